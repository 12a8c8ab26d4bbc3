//! The valid load: what the API server sends, paced.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::REVIEW;
use crate::shared::Soak;

/// Paced reviews over four HTTP/2 clients and one HTTP/1.1 client; returns
/// how long they took.
pub async fn valid_load(soak: Arc<Soak>, reviews: usize, rate: usize, workers: usize) -> Duration {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client_index in 0..5 {
        let http1 = client_index == 4;
        let client = soak.client(http1);
        for _ in 0..workers {
            let (soak, client, next) = (soak.clone(), client.clone(), next.clone());
            let url = soak.url("/mutate");
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= reviews {
                        return;
                    }
                    tokio::time::sleep_until(
                        started + Duration::from_secs_f64(i as f64 / rate as f64),
                    )
                    .await;
                    let outcome = async {
                        let response = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(REVIEW)
                            .send()
                            .await
                            .map_err(|e| format!("{e:?}"))?;
                        let status = response.status();
                        let body = response.bytes().await.map_err(|e| format!("body: {e:?}"))?;
                        let allowed = body.windows(14).any(|w| w == b"\"allowed\":true");
                        let patched = body.windows(9).any(|w| w == b"JSONPatch");
                        if status == 200 && allowed && patched {
                            Ok(())
                        } else {
                            Err(format!(
                                "{status}: {}",
                                String::from_utf8_lossy(&body[..body.len().min(200)])
                            ))
                        }
                    }
                    .await;
                    match outcome {
                        Ok(()) => soak.valid_ok.fetch_add(1, Ordering::Relaxed),
                        Err(error) => {
                            let mut errors = soak.valid_errors.lock().expect("errors");
                            errors.push(format!(
                                "at {:.1}s, {}: {error}",
                                started.elapsed().as_secs_f64(),
                                if http1 { "HTTP/1.1" } else { "HTTP/2" }
                            ));
                            soak.valid_failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            });
        }
    }
    while tasks.join_next().await.is_some() {}
    started.elapsed()
}
