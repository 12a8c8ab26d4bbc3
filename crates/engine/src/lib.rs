//! landgate's admission engine, pure: a Pod in; a JSON patch, the policies,
//! the warnings and one outcome out. No IO, no clock, no transport.
#![forbid(unsafe_code)]

pub mod derive;
pub mod mount_path;
pub mod mutate;
pub mod settings;
pub mod update;
