//! Test fixtures shared by the derivation's unit tests.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, ContainerPort};
use landgate_policy::AbsPath;

use super::{Annotations, ContainerSettings};
use crate::settings::Settings;

pub(super) fn paths(list: &[&str]) -> Vec<AbsPath> {
    list.iter().map(|p| p.parse().unwrap()).collect()
}

pub(super) fn web() -> Container {
    Container {
        name: "web".into(),
        command: Some(vec!["/usr/sbin/nginx".into()]),
        ports: Some(vec![ContainerPort {
            container_port: 8080,
            ..Default::default()
        }]),
        ..Default::default()
    }
}

pub(super) fn settings_for(pod: &[(&str, &str)]) -> ContainerSettings {
    let pod = pod
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Annotations::parse(&pod, "shop", &BTreeMap::new(), &["web", "side"])
        .unwrap()
        .for_container(&Settings::default(), "web")
}
