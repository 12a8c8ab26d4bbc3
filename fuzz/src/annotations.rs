//! The input of `Annotations::parse` for the annotations target: maps of
//! landgate's keys (plain, per container, near misses, arbitrary) to values
//! from a dictionary or arbitrary, on the pod and on its namespace.

use arbitrary::Arbitrary;

use crate::pod::{AnnotationModel, Name};
use crate::props::AnnotationCase;

#[derive(Arbitrary, Debug, Clone)]
pub struct AnnotationsModel {
    pod: Vec<AnnotationModel>,
    namespace_annotations: Vec<AnnotationModel>,
    containers: Vec<ContainerName>,
}

#[derive(Arbitrary, Debug, Clone)]
enum ContainerName {
    Known(Name),
    Any(String),
}

impl AnnotationsModel {
    pub fn case(&self) -> AnnotationCase {
        AnnotationCase {
            pod: crate::pod::annotations(&self.pod),
            namespace: "shop".to_owned(),
            namespace_annotations: crate::pod::annotations(&self.namespace_annotations),
            containers: self
                .containers
                .iter()
                .take(crate::pod::FEW)
                .map(|c| match c {
                    ContainerName::Known(name) => name.as_str().to_owned(),
                    ContainerName::Any(name) => name.clone(),
                })
                .collect(),
        }
    }
}
