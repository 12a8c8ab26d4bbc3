//! Raw bytes as `LANDGATE_POLICY`, through the launcher's parser
//! (properties: `props::policy`).
#![no_main]

use landgate_fuzz::{check, props};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| check("policy", props::policy(data)));
