//! The signal that stops a server: SIGINT (Ctrl-C) or SIGTERM (what service managers send).

/// Resolves on SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// How long a stopping server lets running work (a long upload, a request) finish before
/// cutting off what is left; live streams are ended by their servers before this.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits for a stopping server's `draining` future for at most [`GRACE`]; `None` (and a
/// warning naming `what`) when the grace period ran out first.
pub async fn drain<F: std::future::Future>(what: &str, draining: F) -> Option<F::Output> {
    match tokio::time::timeout(GRACE, draining).await {
        Ok(out) => Some(out),
        Err(_) => {
            tracing::warn!("{what}: work still running after {GRACE:?}; stopping anyway");
            None
        }
    }
}
