//! Raw bytes as the `landgate.dev/status` annotation, through
//! `parse_status` (properties: `props::status`).
#![no_main]

use landgate_fuzz::{check, props};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| check("status", props::status(data)));
