//! landgate's launcher: the policy wire format shared with the webhook, and
//! the code that turns a policy into an enforced Landlock domain.

pub mod policy;
