//! `[components.*]`: where the vendors' servers come from (`plan::components` reads them for
//! the deploy). Checked here with positions, including what the deploy will need from a
//! source for the hosts that install it (sums, ClickHouse's four-part version: each server's
//! `check_source`, `plan::vendor`), so that `inventory check` refuses what `deploy` would
//! refuse after connecting.

use std::collections::BTreeMap;
use std::ops::Range;
use std::str::FromStr;

use serde::Deserialize;
use toml::{Spanned, Value};

use super::error::InventoryError;
use super::model::RawHost;
use super::names::shown;
use super::validate::Checker;
use super::{Host, Role};
use crate::plan::components::{check_base_url, check_sha256, check_version, Artifacts, Checksums};
use crate::plan::install::push_sum;
use crate::plan::vendor::{SourceCheck, SourceKey};

/// One `[components.NAME]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawComponent {
    pub source: Option<Spanned<String>>,
    pub version: Option<Spanned<String>>,
    pub sha256: Option<Spanned<Value>>,
    pub base_url: Option<Spanned<String>>,
    pub artifact: Option<Spanned<Value>>,
    pub tls: Option<Spanned<RawTls>>,
}

/// `tls = { cert, key, ca }` of `[components.nats]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    pub ca: Option<Spanned<String>>,
}

pub type RawComponents = BTreeMap<Spanned<String>, Spanned<RawComponent>>;

const SOURCES: &str = "use \"os\" (the distribution's package), \"release\" (the vendor's, with version and sha256) or \"push\" (a file from this machine, with artifact and sha256)";

impl RawComponent {
    /// The keys set, with the place of their values.
    fn keys(&self) -> Vec<(&'static str, Range<usize>)> {
        let mut keys = Vec::new();
        if let Some(v) = &self.version {
            keys.push(("version", v.span()));
        }
        if let Some(v) = &self.sha256 {
            keys.push(("sha256", v.span()));
        }
        if let Some(v) = &self.base_url {
            keys.push(("base_url", v.span()));
        }
        if let Some(v) = &self.artifact {
            keys.push(("artifact", v.span()));
        }
        keys
    }
}

impl Checker<'_> {
    pub(crate) fn components(
        &self,
        raw: &RawComponents,
        hosts: &[Host],
    ) -> Result<(), InventoryError> {
        for (name, table) in raw {
            // A vendor's server takes settings (where it comes from); mp-remote's own
            // services are released with it.
            let configurable: Vec<String> = Role::ALL
                .iter()
                .filter(|r| r.component().package().is_some())
                .map(|r| format!("[components.{r}]"))
                .collect();
            let role = match Role::from_str(name.get_ref()) {
                Ok(role) if role.component().package().is_some() => role,
                Ok(_) => {
                    let own: Vec<&str> = Role::ALL
                        .iter()
                        .filter(|r| r.component().package().is_none())
                        .map(|r| r.as_str())
                        .collect();
                    return Err(self.src.invalid(
                        name.span(),
                        format!("[components.{}] takes no settings", name.get_ref()),
                        format!(
                            "remove it: {} are mp-remote itself, released under the deploy_dir var",
                            own.join(" and ")
                        ),
                    ));
                }
                Err(_) => {
                    return Err(self.src.invalid(
                        name.span(),
                        format!("[components.{}] is not a component", shown(name.get_ref())),
                        format!("use {}", configurable.join(" or ")),
                    ))
                }
            };
            let installed = hosts.iter().any(|h| h.has_role(role));
            self.component(role, table, installed)?;
        }
        Ok(())
    }

    /// A role whose component has no table installs the seed's pinned release, which has no
    /// sums (and ClickHouse's pin no four-part version): deploy will refuse it. The inventory
    /// may be meant for other commands only (ping, facts, status), so this is a warning.
    pub(crate) fn default_sources(&self, raw: &RawComponents, hosts: &[Spanned<RawHost>]) {
        for (role, pinned) in Role::ALL
            .into_iter()
            .filter_map(|r| Some((r, r.component().pinned()?)))
        {
            if raw.keys().any(|name| name.get_ref() == role.as_str()) {
                continue;
            }
            let first = hosts
                .iter()
                .flat_map(|h| &h.get_ref().roles)
                .find(|r| r.get_ref() == role.as_str());
            if let Some(at) = first {
                self.warn(
                    at.span(),
                    &format!("role {role} without [components.{role}]: deploy would install {role} {pinned} from the vendor's release, which needs its sha256, and will refuse"),
                    &format!("add [components.{role}] with source = \"os\" (the distribution's package), or source = \"release\" with version and sha256"),
                );
            }
        }
    }

    fn component(
        &self,
        role: Role,
        table: &Spanned<RawComponent>,
        installed: bool,
    ) -> Result<(), InventoryError> {
        let c = table.get_ref();
        let scope = format!("[components.{role}]");
        let fail = |span: Range<usize>, message: String, hint: &str| {
            Err(self
                .src
                .invalid(span, format!("{scope}: {message}"), hint.to_string()))
        };
        let Some(source) = &c.source else {
            return fail(
                table.span(),
                "no source".into(),
                &format!("add source = ...: {SOURCES}"),
            );
        };
        let allowed: &[&str] = match source.get_ref().as_str() {
            "os" => &[],
            "release" => &["version", "sha256", "base_url"],
            "push" => &["artifact", "sha256", "version"],
            other => {
                return fail(
                    source.span(),
                    format!("unknown source {}", shown(other)),
                    SOURCES,
                )
            }
        };
        if let Some(tls) = &c.tls {
            self.tls(role, tls)?;
        }
        let kind = source.get_ref().as_str();
        for (key, span) in c.keys() {
            if !allowed.contains(&key) {
                return fail(
                    span,
                    format!("{key} does not apply to source = {kind:?}"),
                    &format!("remove it; {SOURCES}"),
                );
            }
        }
        if let Some(v) = &c.version {
            check_version(v.get_ref()).or_else(|e| fail(v.span(), e, ""))?;
        }
        if let Some(url) = &c.base_url {
            check_base_url(url.get_ref()).or_else(|e| fail(url.span(), e, ""))?;
        }
        let sums = match &c.sha256 {
            None => None,
            Some(v) => Some(self.checksums(&scope, v)?),
        };
        let artifacts = match &c.artifact {
            None if kind == "push" => {
                return fail(
                    source.span(),
                    "source = \"push\" needs the file to push".into(),
                    "add artifact = \"files/...\" (relative to the inventory)",
                )
            }
            None => Vec::new(),
            Some(v) => self.artifacts(&scope, v)?,
        };
        if !installed {
            return Ok(());
        }
        // What the deploy will ask of this source on the hosts that install it: the server's
        // own needs first, then a sum for each pushed file.
        let sums_span = c.sha256.as_ref().map_or(source.span(), Spanned::span);
        let need = |result: Result<(), String>| result.or_else(|e| fail(sums_span.clone(), e, ""));
        if let Some(plan) = role.component().vendor_plan() {
            let check = SourceCheck {
                kind,
                version: c.version.as_ref().map(|v| v.get_ref().as_str()),
                sums: sums.as_ref(),
                artifacts: &artifacts,
            };
            if let Err(problem) = (plan.check_source)(&check) {
                let span = match problem.at {
                    SourceKey::Version => c.version.as_ref().map_or(source.span(), Spanned::span),
                    SourceKey::Artifact => c.artifact.as_ref().map_or(source.span(), Spanned::span),
                    SourceKey::Sha256 => sums_span,
                };
                return fail(span, problem.message, &problem.hint);
            }
        }
        match kind {
            "push" => {
                for artifact in &artifacts {
                    need(push_sum(sums.as_ref(), artifact, role.as_str()).map(|_| ()))?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// NATS only; the three files, each a file on this machine.
    fn tls(&self, role: Role, tls: &Spanned<RawTls>) -> Result<(), InventoryError> {
        let fail = |span: Range<usize>, message: String, hint: &str| {
            Err(self.src.invalid(
                span,
                format!("[components.{role}]: {message}"),
                hint.to_string(),
            ))
        };
        if role != Role::NATS {
            return fail(
                tls.span(),
                "tls applies to NATS only".into(),
                "move it to [components.nats]",
            );
        }
        let t = tls.get_ref();
        let files = [
            (
                "cert",
                &t.cert,
                "the PEM certificate every NATS node presents",
            ),
            ("key", &t.key, "its PEM private key"),
            ("ca", &t.ca, "the PEM certificate of the CA that signed it"),
        ];
        // All three named first, then each one there.
        for (name, value, what) in files {
            if value.is_none() {
                return fail(
                    tls.span(),
                    format!("tls has no {name}"),
                    &format!("add {name} = \"...\": {what}, relative to the inventory"),
                );
            }
        }
        for (name, value, what) in files {
            let Some(value) = value else { continue };
            let file = self.path(value.get_ref().trim());
            if !file.is_file() {
                return fail(
                    value.span(),
                    format!("tls {name}: no file {}", file.display()),
                    &format!("give the path of {what}, relative to the inventory"),
                );
            }
        }
        Ok(())
    }

    fn checksums(&self, scope: &str, value: &Spanned<Value>) -> Result<Checksums, InventoryError> {
        let hint =
            "write sha256 = \"<64 hex digits>\", or sha256 = { \"<file name>\" = \"<sum>\", ... }";
        let sums: Checksums = value.get_ref().clone().try_into().map_err(|_| {
            self.src.invalid(
                value.span(),
                format!("{scope}: sha256 is neither a sum nor a table of sums by file name"),
                hint,
            )
        })?;
        let all: Vec<&String> = match &sums {
            Checksums::One(sum) => vec![sum],
            Checksums::ByFile(by_file) => by_file.values().collect(),
        };
        for sum in all {
            check_sha256(sum)
                .map_err(|e| self.src.invalid(value.span(), format!("{scope}: {e}"), ""))?;
        }
        Ok(sums)
    }

    fn artifacts(
        &self,
        scope: &str,
        value: &Spanned<Value>,
    ) -> Result<Vec<String>, InventoryError> {
        let hint = "give the path of a .tar.gz, a binary or a .deb, relative to the inventory";
        let artifacts: Artifacts = value.get_ref().clone().try_into().map_err(|_| {
            self.src.invalid(
                value.span(),
                format!("{scope}: artifact is neither a path nor a list of paths"),
                hint,
            )
        })?;
        let paths = artifacts.paths();
        let unfit =
            |p: &&str| p.trim().is_empty() || p.ends_with('/') || p.contains(char::is_control);
        if paths.is_empty() || paths.iter().any(unfit) {
            return Err(self.src.invalid(
                value.span(),
                format!("{scope}: artifact names no file"),
                hint,
            ));
        }
        Ok(paths.into_iter().map(str::to_string).collect())
    }
}
