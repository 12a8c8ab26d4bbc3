//! Restricting the process to a [`Plan`]: the seccomp filters, then the
//! Landlock ruleset, on the calling thread. The plan has decided what to
//! restrict; this carries it out and records any shortfall on the
//! assessment.

use landgate_policy::Enforcement;
use landlock::{
    AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, RestrictionStatus, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus,
};

use super::assess::{Assessment, Capability};
use super::plan::Plan;
use super::report::{Gap, Status};
use crate::error::LaunchError;
use crate::seccomp;

impl Plan {
    /// Installs the seccomp filters and restricts the calling thread. After
    /// `Ok`, the process is sandboxed for good and only `execve` remains.
    pub fn apply(mut self) -> Result<Assessment, LaunchError> {
        if self.seccomp.any()
            && let Err(err) = seccomp::install(self.seccomp)
        {
            match self.enforcement {
                Enforcement::Required => return Err(LaunchError::Seccomp(err)),
                Enforcement::BestEffort => self.assessment.degrade(Gap::Seccomp(err)),
            }
        }
        if self.support.abi() == 0 || !self.handles_anything() {
            return Ok(self.assessment);
        }
        let mut assessment = self.assessment.clone();
        let status = self.restrict()?;
        if status.ruleset != RulesetStatus::FullyEnforced || !status.no_new_privs {
            // Cannot happen with HardRequirement (the crate errors instead);
            // kept so that a crate change cannot make a silent downgrade.
            assessment.degrade(Gap::Unavailable(
                "the landlock crate reported a partial restriction",
            ));
        }
        Ok(assessment)
    }

    fn restrict(self) -> Result<RestrictionStatus, LaunchError> {
        let tcp = self.tcp_supported();
        let configure_logging = self.supports(Capability::DenialLogging);
        let mut handled_net = BitFlags::<AccessNet>::empty();
        if tcp && self.bind.is_some() {
            handled_net |= AccessNet::BindTcp;
        }
        if tcp && self.connect.is_some() {
            handled_net |= AccessNet::ConnectTcp;
        }
        // Only rights this ABI supports are requested, so a hard requirement
        // turns any disagreement with the crate's own probe into an error
        // instead of a silent downgrade.
        let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::HardRequirement);
        if let Some(fs) = &self.fs {
            ruleset = ruleset.handle_access(fs.handled)?;
        }
        if !handled_net.is_empty() {
            ruleset = ruleset.handle_access(handled_net)?;
        }
        if self.scopes_supported() && !self.scopes.is_empty() {
            ruleset = ruleset.scope(self.scopes)?;
        }
        let mut created = ruleset.create()?;
        if let Some(fs) = self.fs {
            for rule in fs.rules {
                created = created.add_rule(PathBeneath::new(rule.fd, rule.access))?;
            }
        }
        if tcp {
            for (ports, access) in [
                (&self.bind, AccessNet::BindTcp),
                (&self.connect, AccessNet::ConnectTcp),
            ] {
                for port in ports.iter().flatten() {
                    created = created.add_rule(NetPort::new(port.get(), access))?;
                }
            }
        }
        if configure_logging {
            // By default the kernel logs denials only until the next execve,
            // i.e. the launcher's own; the command's are what operators need.
            created = created
                .log_new_exec(self.log_denials)?
                .log_same_exec(self.log_denials)?;
        }
        match created.restrict_self() {
            Ok(status) => Ok(status),
            Err(landlock::RulesetError::RestrictSelf(
                landlock::RestrictSelfError::RestrictSelfCall { source, .. },
            )) if source.raw_os_error() == Some(libc::E2BIG) => Err(LaunchError::TooManyLayers),
            Err(err) => Err(err.into()),
        }
    }
}

impl Assessment {
    /// Records a gap found while applying (the seccomp filters failed, or
    /// the `landlock` crate reported less than was asked).
    fn degrade(&mut self, gap: Gap) {
        if self.status == Status::FullyEnforced {
            self.status = Status::PartiallyEnforced;
        }
        self.gaps.push(gap);
    }
}
