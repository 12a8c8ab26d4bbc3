//! The run: two replicas behind the proxy, the load and abuse started,
//! and the timeline of rotations, the cap burst, the restart and the
//! rapid-reset flood played against them.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use landgate_webhook::tls::DevCa;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::abuse::{bad_bodies, idle_holder, slow_body, slow_headers};
use crate::cap_burst::cap_burst;
use crate::figures::{Finished, Usage};
use crate::flood::stream_flood;
use crate::plan::Plan;
use crate::proxy::{Endpoints, run_proxy};
use crate::replica::{Replica, admin_get};
use crate::report::{Report, Tally};
use crate::rotation::{rotate, write_certificate};
use crate::shared::Soak;
use crate::valid::valid_load;

/// Starts the replicas and the proxy, plays the timeline while the valid
/// load and the abuse loops go on, and reports the figures.
pub async fn soak(plan: &Plan) -> Report {
    let mut report = Report::default();
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = DevCa::new().expect("CA");
    write_certificate(&ca, dir.path());
    let flags = plan.flags();
    report.line(format!(
        "landgate soak: {} valid reviews at {}/s, {} idle connections, 2 replicas behind a loopback proxy",
        plan.reviews, plan.rate, plan.idle
    ));
    report.line(format!("replica flags: {}", flags.join(" ")));
    report.line(format!(
        "  (--max-connections {}: all {} idle connections may land on one replica while the other restarts, \
         and the API server's connections need room above them; the default (1024) is covered by tests/limits.rs)",
        plan.max_connections(),
        plan.idle
    ));

    let a = Replica::start("a", dir.path(), &flags);
    let mut b = Replica::start("b", dir.path(), &flags);
    if !(a.wait_ready().await && b.wait_ready().await) {
        report.goal(false, "replicas became ready");
        return report;
    }
    let endpoints = Arc::new(Endpoints::default());
    endpoints.set(vec![a.addr, b.addr]);
    let proxy_listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy");
    let proxy = proxy_listener.local_addr().expect("proxy address");
    let proxy_task = tokio::spawn(run_proxy(proxy_listener, endpoints.clone()));

    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss_idle, fds_before) = (a.rss_kib(), a.fds());

    let soak = Arc::new(Soak {
        ca_pem: ca.ca_pem(),
        proxy,
        running: AtomicBool::new(true),
        tally: Tally::default(),
        valid_ok: AtomicUsize::new(0),
        valid_failed: AtomicUsize::new(0),
        valid_errors: Mutex::new(Vec::new()),
        idle_open: AtomicUsize::new(0),
        idle_reaped: AtomicUsize::new(0),
        idle_longest_ms: AtomicU64::new(0),
    });

    let started = Instant::now();
    let mut abuse = tokio::task::JoinSet::new();
    for i in 0..plan.idle {
        let soak = soak.clone();
        // Ramp up over two seconds rather than overflow the listen backlog.
        let delay = Duration::from_millis((i * 2000 / plan.idle.max(1)) as u64);
        abuse.spawn(async move {
            tokio::time::sleep(delay).await;
            idle_holder(&soak).await;
        });
    }
    for _ in 0..plan.slow_clients {
        let s = soak.clone();
        abuse.spawn(async move { slow_headers(&s, false).await });
        let s = soak.clone();
        abuse.spawn(async move { slow_headers(&s, true).await });
        let s = soak.clone();
        abuse.spawn(async move { slow_body(&s).await });
    }
    let s = soak.clone();
    abuse.spawn(async move { bad_bodies(&s).await });
    let flood_streams = plan.flood_streams;
    let s = soak.clone();
    abuse.spawn(async move {
        while s.running() {
            stream_flood(&s, flood_streams, false).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });

    let valid = tokio::spawn(valid_load(
        soak.clone(),
        plan.reviews,
        plan.rate,
        plan.workers,
    ));

    // The timeline, in fractions of the expected duration.
    let expected = plan.expected_duration();
    let at = |fraction: f64| started + expected.mul_f64(fraction);
    let mut peak_open = 0usize;

    let stamp = |what: &str| format!("at {:>5.1}s: {what}", started.elapsed().as_secs_f64());
    tokio::time::sleep_until(at(0.15)).await;
    report.line(stamp("certificate rotation 1"));
    let replicas = [("a", a.addr), ("b", b.addr)];
    rotate(&ca, dir.path(), 1, &soak, &replicas, &mut report).await;

    tokio::time::sleep_until(at(0.25)).await;
    peak_open = peak_open.max(soak.idle_open.load(Ordering::Relaxed));
    report.line(stamp("cap burst on replica a"));
    cap_burst(&soak, a.addr, plan.max_connections(), &mut report).await;

    tokio::time::sleep_until(at(0.4)).await;
    peak_open = peak_open.max(soak.idle_open.load(Ordering::Relaxed));
    // What a pod deletion does: endpoints first, the preStop pause (5s in
    // the Deployment, shortened), then SIGTERM.
    report.line(stamp("replica b out of the endpoints"));
    endpoints.set(vec![a.addr]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    report.line(stamp("SIGTERM to replica b"));
    let restart_started = Instant::now();
    let exit = b.terminate(Duration::from_secs(10)).await;
    report.line(format!(
        "replica b: SIGTERM -> exit {:?} after {:.1}s",
        exit,
        restart_started.elapsed().as_secs_f64()
    ));
    report.goal(exit == Some(0), "replica b drained and exited 0 on SIGTERM");
    drop(b);
    let b = Replica::start("b", dir.path(), &flags);
    let b_ready = b.wait_ready().await;
    endpoints.set(vec![a.addr, b.addr]);
    report.goal(b_ready, "replica b restarted and ready");
    report.line(stamp(&format!(
        "replica b restarted, back in the endpoints {:.1}s after SIGTERM",
        restart_started.elapsed().as_secs_f64()
    )));

    tokio::time::sleep_until(at(0.65)).await;
    report.line(stamp("certificate rotation 2"));
    let replicas = [("a", a.addr), ("b", b.addr)];
    rotate(&ca, dir.path(), 2, &soak, &replicas, &mut report).await;

    tokio::time::sleep_until(at(0.75)).await;
    peak_open = peak_open.max(soak.idle_open.load(Ordering::Relaxed));
    report.line(stamp("HTTP/2 rapid-reset flood"));
    stream_flood(&soak, plan.flood_streams, true).await;

    let valid_elapsed = valid.await.expect("valid load");
    soak.running.store(false, Ordering::Relaxed);
    // Every abuse loop ends within its own deadline after this.
    let drain = tokio::time::timeout(Duration::from_secs(20), async {
        while abuse.join_next().await.is_some() {}
    })
    .await;
    if drain.is_err() {
        abuse.abort_all();
    }
    report.goal(
        drain.is_ok(),
        "abuse loops ended within 20s of the last review",
    );

    // After: all clients gone; the replica's descriptors come back down.
    let settle = Instant::now() + Duration::from_secs(15);
    while a.fds() > fds_before + 4 && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (rss_after, fds_after, rss_peak) = (a.rss_kib(), a.fds(), a.peak_rss_kib());
    let metrics_a = admin_get(a.admin, "/metrics")
        .await
        .map(|r| r.1)
        .unwrap_or_default();
    proxy_task.abort();

    Finished {
        plan,
        soak: &soak,
        endpoints: &endpoints,
        valid_elapsed,
        peak_open,
        replica_a: Usage {
            rss_idle,
            rss_peak,
            rss_after,
            fds_before,
            fds_after,
            metrics: metrics_a,
        },
    }
    .report(&mut report);
    drop(a);
    report
}
