//! The serving certificate, issued into the replicas' directory and
//! rotated under them.

use std::net::SocketAddr;
use std::path::Path;

use landgate_webhook::tls::{self, DevCa};

use crate::report::Report;
use crate::shared::Soak;
use crate::wire;

pub fn write_certificate(ca: &DevCa, dir: &Path) {
    let (cert, key) = ca.issue(&tls::dev_names()).expect("certificate");
    // Key first, each renamed into place: what certs/generate.sh does.
    for (name, contents) in [("tls.key", &key), ("tls.crt", &cert)] {
        let tmp = dir.join(format!("{name}.new"));
        std::fs::write(&tmp, contents).expect("write certificate");
        std::fs::rename(&tmp, dir.join(name)).expect("rename certificate");
    }
}

/// Rotates the serving certificate, then checks that a new handshake with
/// each replica gets it.
pub async fn rotate(
    ca: &DevCa,
    dir: &Path,
    n: usize,
    soak: &Soak,
    replicas: &[(&str, SocketAddr)],
    report: &mut Report,
) {
    write_certificate(ca, dir);
    let expected = {
        use rustls::pki_types::pem::PemObject as _;
        let pem = std::fs::read(dir.join("tls.crt")).expect("certificate");
        rustls::pki_types::CertificateDer::from_pem_slice(&pem)
            .expect("PEM")
            .to_vec()
    };
    for (name, addr) in replicas {
        let served = match wire::connect(&soak.tls(&[]), *addr).await {
            Ok(tls) => tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|cert| cert.to_vec()),
            Err(_) => None,
        };
        report.goal(
            served.as_ref() == Some(&expected),
            format!(
                "rotation {n}: replica {name} serves the new certificate on the next handshake"
            ),
        );
    }
}
