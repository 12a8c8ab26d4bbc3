//! The Service stand-in: a loopback TCP proxy over the ready replicas.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy choosing a ready replica per connection, round robin, like
/// kube-proxy over the Service's endpoints; connections it forwarded keep
/// going to their replica when it leaves the endpoints (conntrack).
#[derive(Default)]
pub struct Endpoints {
    ready: RwLock<Vec<SocketAddr>>,
    next: AtomicUsize,
    pub dial_failures: AtomicUsize,
}

impl Endpoints {
    pub fn set(&self, ready: Vec<SocketAddr>) {
        *self.ready.write().expect("endpoints") = ready;
    }

    fn pick(&self) -> Option<SocketAddr> {
        let ready = self.ready.read().expect("endpoints");
        (!ready.is_empty()).then(|| ready[self.next.fetch_add(1, Ordering::Relaxed) % ready.len()])
    }
}

pub async fn run_proxy(listener: TcpListener, endpoints: Arc<Endpoints>) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let endpoints = endpoints.clone();
        tokio::spawn(async move {
            let Some(backend) = endpoints.pick() else {
                endpoints.dial_failures.fetch_add(1, Ordering::Relaxed);
                return;
            };
            match TcpStream::connect(backend).await {
                Ok(mut upstream) => {
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
                Err(_) => {
                    endpoints.dial_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}
