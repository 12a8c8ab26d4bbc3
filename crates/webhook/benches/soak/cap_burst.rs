//! The connection cap, shown by exceeding it on one replica.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::time::Instant;

use crate::report::Report;
use crate::shared::Soak;
use crate::{REVIEW, wire};

/// Opens connections straight at one replica, each sending one review so
/// that the first-request deadline does not close it, until the replica
/// refuses one; holds them a second while the valid load goes on, then
/// lets them go.
pub async fn cap_burst(soak: &Soak, replica: SocketAddr, cap: usize, report: &mut Report) {
    let connector = soak.tls(&[b"http/1.1"]);
    let held = Arc::new(Mutex::new(Vec::new()));
    let refusal: Arc<Mutex<Option<Duration>>> = Arc::default();
    let attempts = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (connector, held, refusal, attempts) = (
            connector.clone(),
            held.clone(),
            refusal.clone(),
            attempts.clone(),
        );
        workers.spawn(async move {
            while refusal.lock().expect("refusal").is_none()
                && attempts.fetch_add(1, Ordering::Relaxed) < cap + 256
                && started.elapsed() < Duration::from_secs(30)
            {
                let attempt = Instant::now();
                let Ok(mut tls) = wire::connect(&connector, replica).await else {
                    refusal
                        .lock()
                        .expect("refusal")
                        .get_or_insert(attempt.elapsed());
                    return;
                };
                let request = wire::http1_post("/mutate", REVIEW);
                if tls.write_all(&request).await.is_ok()
                    && wire::http1_response(&mut tls).await.is_ok()
                {
                    held.lock().expect("held").push(tls);
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let refusal = *refusal.lock().expect("refusal");
    let held = std::mem::take(&mut *held.lock().expect("held"));
    report.line(format!(
        "cap burst on replica a: {} connections opened on top of the load in {:.1}s, then one refused after {:?}",
        held.len(),
        started.elapsed().as_secs_f64(),
        refusal.unwrap_or_default()
    ));
    report.goal(
        refusal.is_some_and(|t| t < Duration::from_millis(500)),
        "a connection beyond --max-connections is refused within 500ms",
    );
    soak.tally
        .add("cap burst (beyond the cap)", "refused", refusal.is_some());
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(held);
}
