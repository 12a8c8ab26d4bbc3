//! Raw bytes as an AdmissionReview request body, through `review()` and the
//! engine (properties: `props::admission_review`).
#![no_main]

use landgate_fuzz::{check, props};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| check("admission_review", props::admission_review(body)));
