//! Kubernetes `containerPorts` → the ports a container may bind.

use k8s_openapi::api::core::v1::Container;
use landgate_policy::{Port, PortSet};

/// TCP `containerPorts`, sorted and deduplicated; other protocols are
/// reported, since Landlock's network rules cover TCP only.
pub(super) fn bind_ports(container: &Container, warn: &mut impl FnMut(String)) -> PortSet {
    let mut ports = Vec::new();
    for (i, port) in container.ports.iter().flatten().enumerate() {
        let label = port
            .name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        let protocol = port.protocol.as_deref().unwrap_or("TCP");
        let Ok(number) = Port::try_from(port.container_port) else {
            warn(format!(
                "ports[{i}].containerPort {} is not a port number and is ignored",
                port.container_port
            ));
            continue;
        };
        if protocol == "TCP" {
            ports.push(number);
        } else {
            warn(format!(
                "port {number}/{protocol}{label} cannot be restricted: Landlock's network rules cover TCP only, so {protocol} traffic is not sandboxed"
            ));
        }
    }
    ports.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use crate::derive::derive_policy;
    use crate::derive::fixtures::{settings_for, web};
    use k8s_openapi::api::core::v1::ContainerPort;
    use landgate_policy::PortSet;

    #[test]
    fn ports_tcp_deduped_named_and_udp_reported() {
        let mut c = web();
        let port = |n: i32, proto: Option<&str>, name: Option<&str>| ContainerPort {
            container_port: n,
            protocol: proto.map(Into::into),
            name: name.map(Into::into),
            ..Default::default()
        };
        c.ports = Some(vec![
            port(8080, None, Some("http")),
            port(8080, Some("TCP"), Some("http-alt")),
            port(53, Some("UDP"), Some("dns")),
            port(9000, Some("SCTP"), None),
            port(443, Some("TCP"), Some("https")),
            port(70000, None, None),
        ]);
        let derived = derive_policy(&settings_for(&[]), &c, &[]);
        assert_eq!(derived.policy.net.bind, Some(PortSet::from([443, 8080])));
        assert_eq!(derived.warnings.len(), 3, "{:?}", derived.warnings);
        assert!(derived.warnings[0].starts_with("container \"web\": port 53/UDP (dns)"));
        assert!(derived.warnings[1].contains("9000/SCTP"));
        assert!(derived.warnings[2].contains("70000"));
    }

    #[test]
    fn no_ports_means_no_bind() {
        let mut c = web();
        c.ports = None;
        let policy = derive_policy(&settings_for(&[]), &c, &[]).policy;
        assert_eq!(policy.net.bind, Some(PortSet::from([])));
        assert_eq!(policy.net.effective_bind(), Some(PortSet::from([0])));
    }
}
