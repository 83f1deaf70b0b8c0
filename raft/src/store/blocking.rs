//! Running redb work (page I/O, fsync) from async code without stalling the
//! runtime: [`run`] is the one way the stores do it.

use tokio::runtime::{Handle, RuntimeFlavor};

use super::error::StoreError;

/// Runs blocking storage work `f` and returns its result.
///
/// On a multi-thread runtime the work runs in place under
/// [`tokio::task::block_in_place`]: the worker's other tasks move to another
/// worker and the caller continues on this thread when `f` returns, which
/// saves the two thread hand-offs of `spawn_blocking` on every log append
/// and apply (they sit on the write path of every request; in back-to-back
/// runs puts at concurrency 1 gained about a fifth, higher concurrency was
/// unchanged). Elsewhere (the current-thread runtime of unit tests) it uses
/// the blocking pool.
pub async fn run<T, F>(f: F) -> Result<T, StoreError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(f)
    } else {
        tokio::task::spawn_blocking(f).await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(fail: bool) -> Result<u64, StoreError> {
        run(move || {
            if fail {
                Err(StoreError::Missing {
                    table: "test",
                    key: "k",
                })
            } else {
                Ok(7)
            }
        })
        .await
    }

    #[tokio::test(flavor = "current_thread")]
    async fn runs_on_the_blocking_pool_in_a_current_thread_runtime() {
        assert_eq!(answer(false).await.unwrap(), 7);
        assert!(matches!(
            answer(true).await,
            Err(StoreError::Missing { .. })
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_in_place_in_a_multi_thread_runtime() {
        let caller = std::thread::current().id();
        let ran_on = run(|| Ok(std::thread::current().id())).await.unwrap();
        assert_eq!(ran_on, caller);
        assert!(matches!(
            answer(true).await,
            Err(StoreError::Missing { .. })
        ));
    }
}
