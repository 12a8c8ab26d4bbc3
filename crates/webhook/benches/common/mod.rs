//! The Pod both engine benches measure, so their figures compare.

use serde_json::{Value, json};

/// A Pod with `containers` containers, each with a command, ports, mounts,
/// env and an exec probe, and a connect-ports annotation.
pub fn pod_json(containers: usize) -> Value {
    let containers: Vec<_> = (0..containers)
        .map(|i| {
            json!({
                "name": format!("app-{i}"),
                "image": "ghcr.io/example/app:1.0",
                "command": ["/app/bin/server"],
                "args": ["--listen", format!(":{}", 8000 + i)],
                "env": [
                    {"name": "LOG_LEVEL", "value": "info"},
                    {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}
                ],
                "ports": [{"name": "http", "containerPort": 8000 + i}],
                "volumeMounts": [
                    {"name": "data", "mountPath": format!("/data/{i}")},
                    {"name": "conf", "mountPath": "/etc/app", "readOnly": true}
                ],
                "livenessProbe": {"exec": {"command": ["/app/bin/server", "health"]}}
            })
        })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "bench", "namespace": "shop",
                     "annotations": {"landgate.dev/connect-ports": "53,443,5432"}},
        "spec": {
            "containers": containers,
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "conf", "configMap": {"name": "app"}}
            ]
        }
    })
}
