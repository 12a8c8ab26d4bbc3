//! TCP ports, normalised by type: a [`Port`] is in 0..=65535 whichever way
//! it arrives (policy JSON, annotation text, a Kubernetes `containerPort`),
//! and a [`PortSet`] is sorted and free of duplicates by construction.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::PolicyError;

/// A TCP port. Deserializes from a JSON integer in 0..=65535 and says which
/// value was wrong otherwise (serde's own u16 message does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Port(pub u16);

impl Port {
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<u16> for Port {
    fn from(port: u16) -> Self {
        Self(port)
    }
}

impl TryFrom<i64> for Port {
    type Error = PolicyError;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        u16::try_from(value)
            .map(Port)
            .map_err(|_| PolicyError::PortOutOfRange(value.to_string()))
    }
}

impl FromStr for Port {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse::<i64>()
            .map_err(|_| PolicyError::PortOutOfRange(s.to_owned()))
            .and_then(Port::try_from)
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = serde_json::Number::deserialize(deserializer)?;
        raw.as_i64()
            .ok_or_else(|| PolicyError::PortOutOfRange(raw.to_string()))
            .and_then(Port::try_from)
            .map_err(serde::de::Error::custom)
    }
}

/// A Kubernetes `containerPort` (an `int32` in the API): out of range is an
/// error naming the value, never a truncation.
impl TryFrom<i32> for Port {
    type Error = PolicyError;

    fn try_from(value: i32) -> Result<Self, Self::Error> {
        Port::try_from(i64::from(value))
    }
}

/// A set of TCP ports, sorted and without duplicates by construction, so two
/// policies that allow the same ports serialise to the same bytes whichever
/// order the pod listed them in. Serialises as a JSON array.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PortSet(Vec<Port>);

impl PortSet {
    pub fn iter(&self) -> impl Iterator<Item = Port> + '_ {
        self.0.iter().copied()
    }

    pub fn contains(&self, port: Port) -> bool {
        self.0.binary_search(&port).is_ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn as_slice(&self) -> &[Port] {
        &self.0
    }

    /// This set with `port` added.
    pub fn with(self, port: Port) -> Self {
        self.0.into_iter().chain([port]).collect()
    }
}

impl FromIterator<Port> for PortSet {
    fn from_iter<I: IntoIterator<Item = Port>>(ports: I) -> Self {
        let mut ports: Vec<Port> = ports.into_iter().collect();
        ports.sort_unstable();
        ports.dedup();
        Self(ports)
    }
}

impl<const N: usize> From<[u16; N]> for PortSet {
    fn from(ports: [u16; N]) -> Self {
        ports.into_iter().map(Port).collect()
    }
}

impl<'a> IntoIterator for &'a PortSet {
    type Item = &'a Port;
    type IntoIter = std::slice::Iter<'a, Port>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Any JSON array of valid ports is accepted, in any order and with
/// repeats, and normalised; a bad element is reported by its index.
impl<'de> Deserialize<'de> for PortSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<Port>::deserialize(deserializer).map(|ports| ports.into_iter().collect())
    }
}
