//! The minimal openraft type configuration of this crate's unit tests.

openraft::declare_raft_types!(
    /// String payloads and answers, `u64` node ids, tokio.
    pub(crate) TestTypes:
        D = String,
        R = String,
        NodeId = u64,
        Node = openraft::BasicNode,
        AsyncRuntime = crate::TokioRuntime,
);

impl crate::LogTypes for TestTypes {}
