//! Exactly-once write sessions: `(client_id, seq)` request ids and the
//! acknowledgement floor.
//!
//! Every write gets a [`WriteTicket`] holding a fresh `seq`; the ticket's
//! [`RequestHeader`] is sent unchanged on every retry of that write, so the
//! group applies it once. While the ticket lives its seq is *in flight*; the
//! session's `ack_below` is the lowest in-flight seq (or the next seq to hand
//! out when none is), which tells the group it may forget the results of
//! every write below it. Dropping the ticket (after success or after giving
//! up) acknowledges the seq.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use shardline_proto::pb::RequestHeader;

/// A client session: one random id and the bookkeeping of its writes.
#[derive(Debug)]
pub struct Session {
    /// 16 random bytes (a v4 UUID) naming this session to the servers.
    client_id: [u8; 16],
    /// The next seq to hand out; seqs start at 1.
    next_seq: AtomicU64,
    /// Seqs handed out and not yet acknowledged. Small: at most one entry
    /// per concurrent write.
    in_flight: Mutex<BTreeSet<u64>>,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    /// A new session with a random client id.
    pub fn new() -> Self {
        Self::with_client_id(*uuid::Uuid::new_v4().as_bytes())
    }

    /// A session with a chosen client id (tests; resuming a known session).
    pub fn with_client_id(client_id: [u8; 16]) -> Self {
        Session {
            client_id,
            next_seq: AtomicU64::new(1),
            in_flight: Mutex::new(BTreeSet::new()),
        }
    }

    /// This session's client id.
    pub fn client_id(&self) -> [u8; 16] {
        self.client_id
    }

    /// The floor every server may forget results below: the lowest in-flight
    /// seq, or the next seq if nothing is in flight.
    pub fn ack_below(&self) -> u64 {
        let in_flight = self.in_flight.lock().expect("session mutex poisoned");
        in_flight
            .first()
            .copied()
            .unwrap_or_else(|| self.next_seq.load(Ordering::SeqCst))
    }

    /// Number of writes in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.lock().expect("session mutex poisoned").len()
    }

    /// Starts a write: allocates its seq and marks it in flight until the
    /// returned ticket is dropped.
    pub fn begin(self: &Arc<Self>) -> WriteTicket {
        let (seq, ack_below) = {
            let mut in_flight = self.in_flight.lock().expect("session mutex poisoned");
            // Allocate under the lock so a concurrent `ack_below` never sees
            // a handed-out seq that is not yet in the set.
            let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
            in_flight.insert(seq);
            (seq, *in_flight.first().expect("just inserted"))
        };
        let header = RequestHeader {
            client_id: self.client_id.to_vec(),
            seq,
            ack_below,
        };
        WriteTicket {
            session: Arc::clone(self),
            header,
        }
    }

    fn finish(&self, seq: u64) {
        self.in_flight
            .lock()
            .expect("session mutex poisoned")
            .remove(&seq);
    }
}

/// One write's request id, in flight until dropped.
#[derive(Debug)]
pub struct WriteTicket {
    session: Arc<Session>,
    header: RequestHeader,
}

impl WriteTicket {
    /// The header to send with every attempt of this write.
    pub fn header(&self) -> &RequestHeader {
        &self.header
    }

    /// This write's seq.
    pub fn seq(&self) -> u64 {
        self.header.seq
    }
}

impl Drop for WriteTicket {
    fn drop(&mut self) {
        self.session.finish(self.header.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_below_is_lowest_in_flight_seq() {
        let s = Arc::new(Session::with_client_id([7; 16]));
        assert_eq!(s.ack_below(), 1);
        let t1 = s.begin();
        let t2 = s.begin();
        let t3 = s.begin();
        assert_eq!((t1.seq(), t2.seq(), t3.seq()), (1, 2, 3));
        assert_eq!(t3.header().ack_below, 1);
        assert_eq!(t3.header().client_id, vec![7; 16]);
        assert_eq!(s.ack_below(), 1);
        drop(t2);
        assert_eq!(
            s.ack_below(),
            1,
            "a finished write above the floor does not move it"
        );
        drop(t1);
        assert_eq!(s.ack_below(), 3);
        let t4 = s.begin();
        assert_eq!(t4.header().ack_below, 3);
        drop(t3);
        drop(t4);
        assert_eq!(s.ack_below(), 5, "nothing in flight: floor is the next seq");
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn header_is_stable_for_retries_and_ids_are_random() {
        let s = Arc::new(Session::new());
        let t = s.begin();
        let h1 = t.header().clone();
        let _other = s.begin();
        assert_eq!(&h1, t.header());
        assert!(h1.ack_below <= h1.seq);
        assert_ne!(Session::new().client_id(), Session::new().client_id());
    }
}
