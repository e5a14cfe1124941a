//! The subset of Spin's manifest v2 (`spin.toml`) the host needs.
//!
//! Parsed with serde into a [`Manifest`]: the application variables, the HTTP triggers in
//! manifest order, and per component its wasm source, SQLite labels, variable templates, WASI
//! environment and build command. Keys we do not need (`description`, `watch`, `files`, …) are
//! ignored, as `spin up` ignores what it does not use; what Spin would refuse at start-up
//! (a variable that is neither `default` nor `required`, a non-`/` base, a malformed
//! `allowed_outbound_hosts` entry) is refused here too.
//! [`Manifest::retain_components`] narrows an app to some components, as `spin up -c` does.

use anyhow::{Context, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A loaded `spin.toml`.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The directory holding `spin.toml`: relative sources, `.spin/` and build commands use it.
    pub dir: PathBuf,
    /// `[variables]`, by name.
    pub variables: BTreeMap<String, VariableDecl>,
    /// `[[trigger.http]]`, in manifest order (the order routing ties are broken by).
    pub triggers: Vec<HttpTrigger>,
    /// `[component.<id>]`, by id.
    pub components: BTreeMap<String, ComponentDecl>,
}

/// One application variable: exactly one of a default or `required = true` (as Spin checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableDecl {
    /// `None` for a required variable.
    pub default: Option<String>,
    /// Metadata only, as in Spin.
    pub secret: bool,
}

/// One `[[trigger.http]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTrigger {
    /// The route as written, or `None` for `route = { private = true }` (unroutable).
    pub route: Option<String>,
    /// The component id it runs.
    pub component: String,
}

/// One `[component.<id>]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentDecl {
    /// `source` as written (resolve it with [`Manifest::component_source`]).
    pub source: String,
    /// `sqlite_databases`: the labels the component may `open`.
    pub sqlite_databases: Vec<String>,
    /// `[component.<id>.variables]`: key → template (`"text {{ app_var }}"`).
    pub variables: BTreeMap<String, String>,
    /// `environment`: the component's WASI environment variables.
    pub environment: BTreeMap<String, String>,
    /// `allowed_outbound_hosts` followed by the deprecated `allowed_http_hosts` converted
    /// (Spin's `normalized_allowed_outbound_hosts`); checked as Spin's loader checks it.
    pub allowed_outbound_hosts: Vec<String>,
    /// What `allowed_http_hosts` converted to (empty if absent), for Spin's deprecation
    /// warning.
    pub converted_http_hosts: Vec<String>,
    /// `[component.<id>.build]`, if any.
    pub build: Option<BuildDecl>,
}

/// `[component.<id>.build]`: what `spin build` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildDecl {
    /// A shell command.
    pub command: String,
    /// Relative to the manifest directory; the manifest directory when absent.
    pub workdir: Option<String>,
}

// --- serde shapes of the TOML (kept private: the types above are what the host uses) ---

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: toml::Value,
    #[serde(default)]
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize, Default)]
struct RawApplication {
    #[serde(default)]
    trigger: RawApplicationTrigger,
}

#[derive(Deserialize, Default)]
struct RawApplicationTrigger {
    #[serde(default)]
    http: Option<RawApplicationHttp>,
}

#[derive(Deserialize)]
struct RawApplicationHttp {
    base: Option<String>,
}

#[derive(Deserialize)]
struct RawVariable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    secret: bool,
}

#[derive(Deserialize, Default)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
}

#[derive(Deserialize)]
struct RawHttpTrigger {
    route: RawRoute,
    component: toml::Value,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRoute {
    Route(String),
    Private { private: bool },
}

#[derive(Deserialize)]
struct RawComponent {
    source: toml::Value,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    allowed_http_hosts: Vec<String>,
    build: Option<BuildDecl>,
}

impl<'de> Deserialize<'de> for BuildDecl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            command: String,
            workdir: Option<String>,
        }
        let raw = Raw::deserialize(d)?;
        Ok(BuildDecl {
            command: raw.command,
            workdir: raw.workdir,
        })
    }
}

impl Manifest {
    /// Reads and checks `spin.toml` at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        Self::parse(&text, manifest_dir(path))
            .with_context(|| format!("invalid manifest {}", path.display()))
    }

    /// Parses manifest text; `dir` is the directory the manifest lives in.
    pub fn parse(text: &str, dir: PathBuf) -> anyhow::Result<Manifest> {
        let raw: RawManifest = toml::from_str(text)?;
        if raw.spin_manifest_version.as_integer() != Some(2) {
            bail!("only spin_manifest_version = 2 is supported");
        }
        // Spin refuses a base other than "/" for manifest v2 (it only warns for "/").
        if let Some(base) = raw.application.trigger.http.and_then(|h| h.base)
            && base != "/"
        {
            bail!("`application.trigger.http.base` is not supported (got {base:?})");
        }

        let mut variables = BTreeMap::new();
        for (name, var) in raw.variables {
            crate::variables::validate_name(&name)
                .map_err(|reason| anyhow::anyhow!("invalid variable name: {reason}"))?;
            match (&var.default, var.required) {
                (Some(_), false) | (None, true) => {}
                _ => bail!(
                    "variable {name:?} must have exactly one of `default` or `required = true`"
                ),
            }
            variables.insert(
                name,
                VariableDecl {
                    default: var.default,
                    secret: var.secret,
                },
            );
        }

        let mut components = BTreeMap::new();
        for (id, component) in raw.component {
            let source = match component.source {
                toml::Value::String(source) => source,
                other => {
                    bail!("component {id:?}: only a local file `source` is supported, got {other}")
                }
            };
            let (allowed_outbound_hosts, converted_http_hosts) = allowed_outbound_hosts(
                component.allowed_outbound_hosts,
                &component.allowed_http_hosts,
                &variables,
            )
            .with_context(|| format!("Failed to load component `{id}`"))?;
            components.insert(
                id,
                ComponentDecl {
                    source,
                    sqlite_databases: component.sqlite_databases,
                    variables: component.variables,
                    environment: component.environment,
                    allowed_outbound_hosts,
                    converted_http_hosts,
                    build: component.build,
                },
            );
        }

        let mut triggers = Vec::new();
        for trigger in raw.trigger.http {
            let component = match trigger.component {
                toml::Value::String(id) => id,
                _ => bail!("inline trigger components are not supported; use a component id"),
            };
            if !components.contains_key(&component) {
                bail!("trigger references unknown component {component:?}");
            }
            let route = match trigger.route {
                RawRoute::Route(route) => Some(route),
                RawRoute::Private { private: true } => None,
                RawRoute::Private { private: false } => bail!(
                    "route must be a string pattern or '{{ private = true }}': '{component}' has {{ private = false }}"
                ),
            };
            triggers.push(HttpTrigger { route, component });
        }

        Ok(Manifest {
            dir,
            variables,
            triggers,
            components,
        })
    }

    /// Keeps only what `spin up -c <id>...` keeps (SPIN_CONTRACT.md A3); no ids keeps all.
    ///
    /// Every id must name a component, with Spin's error otherwise. Then only the triggers of
    /// the listed components stay, and only the components such a trigger runs: a listed
    /// component without a trigger is dropped too, and if no trigger is left the app cannot
    /// start. App `[variables]` stay in full, so a required one still needs a provider.
    pub fn retain_components(&mut self, ids: &[String]) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        if let Some(unknown) = ids.iter().find(|id| !self.components.contains_key(*id)) {
            return Err(anyhow::anyhow!(
                "Specified component \"{unknown}\" not found in application"
            )
            .context(
                "failed to resolve application with only components selected with --component",
            ));
        }
        self.triggers
            .retain(|trigger| ids.contains(&trigger.component));
        let triggers = &self.triggers;
        self.components
            .retain(|id, _| triggers.iter().any(|trigger| &trigger.component == id));
        if self.triggers.is_empty() {
            bail!("No triggers in app");
        }
        Ok(())
    }

    /// The wasm file of every component, by id (as [`Manifest::component_source`]).
    pub fn component_sources(
        &self,
        cargo_target_dir: Option<&Path>,
    ) -> anyhow::Result<Vec<(String, PathBuf)>> {
        self.components
            .keys()
            .map(|id| Ok((id.clone(), self.component_source(id, cargo_target_dir)?)))
            .collect()
    }

    /// The wasm file of component `id`, following the `CARGO_TARGET_DIR` rule.
    ///
    /// A relative source resolves against the manifest directory. If the source goes through a
    /// `target/` directory while `CARGO_TARGET_DIR` is set (CI keeps the cargo target dir
    /// outside the clone), `$CARGO_TARGET_DIR/<what follows the last target/>` wins when it
    /// exists: that is where cargo builds, and a stale `./target` must not shadow it.
    pub fn component_source(
        &self,
        id: &str,
        cargo_target_dir: Option<&Path>,
    ) -> anyhow::Result<PathBuf> {
        let component = self
            .components
            .get(id)
            .with_context(|| format!("unknown component {id:?}"))?;
        let source = component
            .source
            .strip_prefix("file://")
            .unwrap_or(&component.source);
        let direct = self.dir.join(source);
        let built = cargo_target_dir
            .filter(|dir| !dir.as_os_str().is_empty())
            .and_then(|target_dir| {
                let rest = if let Some(rest) = source.strip_prefix("target/") {
                    rest
                } else {
                    let at = source.rfind("/target/")?;
                    &source[at + "/target/".len()..]
                };
                Some(target_dir.join(rest))
            });
        if let Some(path) = built.filter(|path| path.is_file()) {
            return Ok(path);
        }
        if direct.is_file() {
            return Ok(direct);
        }
        bail!(
            "component {id:?}: wasm file {} not found (run tests/run or spin build first)",
            direct.display()
        )
    }

    /// Runs every component's build command (`sh -c`), like `spin build`.
    pub fn build_components(&self) -> anyhow::Result<()> {
        for (id, component) in &self.components {
            let Some(build) = &component.build else {
                continue;
            };
            let workdir = match &build.workdir {
                Some(workdir) => self.dir.join(workdir),
                None => self.dir.clone(),
            };
            eprintln!("Building component {id} with `{}`", build.command);
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(&build.command)
                .current_dir(&workdir)
                .status()
                .with_context(|| format!("cannot run the build command of {id:?}"))?;
            if !status.success() {
                bail!("build command of component {id:?} failed: {status}");
            }
        }
        Ok(())
    }
}

/// A component's normalised `allowed_outbound_hosts` and what `allowed_http_hosts` became,
/// checked as Spin's loader checks them (SPIN_CONTRACT.md A1): every literal entry must parse,
/// and a templated one must parse with the manifest defaults if all its variables have one.
/// This runs for every component before `-c` drops any, as in Spin.
fn allowed_outbound_hosts(
    outbound: Vec<String>,
    http: &[String],
    variables: &BTreeMap<String, VariableDecl>,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let converted = crate::outbound::convert_allowed_http_hosts(http)
        .context("`allowed_http_hosts` is malformed")?;
    let all: Vec<String> = outbound.into_iter().chain(converted.clone()).collect();
    crate::outbound::OutboundRules::parse(&all, &[])
        .and_then(|rules| {
            rules.validate_defaults(|name| variables.get(name).and_then(|v| v.default.clone()))
        })
        .context("`allowed_outbound_hosts` is malformed")?;
    Ok((all, converted))
}

/// The directory `spin.toml` at `path` lives in, absolute where it can be. A bare file name
/// (`spin.toml`, the binary's default) has the empty path as its parent, which names no
/// directory: build commands run there would fail to start, so it is the working directory.
fn manifest_dir(path: &Path) -> PathBuf {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    parent
        .canonicalize()
        .unwrap_or_else(|_| parent.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_manifest_file_name_lives_in_the_working_directory() {
        // `cd-host --build` with the default `--manifest spin.toml` ran its build commands in
        // the empty path: "No such file or directory".
        let here = std::env::current_dir().unwrap().canonicalize().unwrap();
        assert_eq!(manifest_dir(Path::new("spin.toml")), here);
        assert_eq!(manifest_dir(Path::new("./spin.toml")), here);
        assert_eq!(manifest_dir(&here.join("spin.toml")), here);
    }

    const MANIFEST: &str = r#"
        spin_manifest_version = 2
        [application]
        name = "t"
        [variables]
        token = { required = true, secret = true }
        size = { default = "10" }
        [[trigger.http]]
        route = "/a/..."
        component = "one"
        [[trigger.http]]
        route = { private = true }
        component = "one"
        [component.one]
        source = "target/wasm32-wasip2/release/one.wasm"
        sqlite_databases = ["default"]
        environment = { K = "v" }
        [component.one.variables]
        token = "Bearer {{ token }}"
        [component.one.build]
        command = "true"
        watch = ["src/**"]
    "#;

    #[test]
    fn parses_variables_triggers_and_components() {
        let manifest = Manifest::parse(MANIFEST, PathBuf::from("/nowhere")).unwrap();
        assert_eq!(manifest.variables["token"].default, None);
        assert!(manifest.variables["token"].secret);
        assert_eq!(manifest.variables["size"].default.as_deref(), Some("10"));
        assert_eq!(
            manifest.triggers,
            vec![
                HttpTrigger {
                    route: Some("/a/...".into()),
                    component: "one".into()
                },
                HttpTrigger {
                    route: None,
                    component: "one".into()
                },
            ]
        );
        let one = &manifest.components["one"];
        assert_eq!(one.sqlite_databases, vec!["default".to_string()]);
        assert_eq!(one.variables["token"], "Bearer {{ token }}");
        assert_eq!(one.environment["K"], "v");
        assert_eq!(one.build.as_ref().unwrap().command, "true");
    }

    #[test]
    fn allowed_http_hosts_follow_allowed_outbound_hosts() {
        let text = MANIFEST.replace(
            "environment = { K = \"v\" }",
            "environment = { K = \"v\" }\n\
             allowed_outbound_hosts = [\"https://a.dev\"]\n\
             allowed_http_hosts = [\"b.dev:81\", \"self\"]",
        );
        let manifest = Manifest::parse(&text, PathBuf::new()).unwrap();
        let one = &manifest.components["one"];
        assert_eq!(
            one.allowed_outbound_hosts,
            vec![
                "https://a.dev",
                "http://b.dev:81",
                "https://b.dev:81",
                "http://self"
            ]
        );
        assert_eq!(
            one.converted_http_hosts,
            vec!["http://b.dev:81", "https://b.dev:81", "http://self"]
        );
    }

    fn load_error(hosts: &str) -> String {
        let text = MANIFEST.replace(
            "environment = { K = \"v\" }",
            &format!("environment = {{ K = \"v\" }}\n{hosts}"),
        );
        format!("{:#}", Manifest::parse(&text, PathBuf::new()).unwrap_err())
    }

    #[test]
    fn malformed_allowed_hosts_fail_load_with_spins_message() {
        assert_eq!(
            load_error(r#"allowed_outbound_hosts = ["https://a.dev/x"]"#),
            "Failed to load component `one`: `allowed_outbound_hosts` is malformed: \
             Invalid allowed host \"a.dev/x\": must not include a path"
        );
        assert_eq!(
            load_error(r#"allowed_outbound_hosts = ["insecure:allow-all"]"#),
            "Failed to load component `one`: `allowed_outbound_hosts` is malformed: \
             'insecure:allow-all' is not allowed - use '*://*:*' instead if you really want to \
             allow all outbound traffic'"
        );
        // `size` defaults to "10": `https://10/x` has a path.
        assert_eq!(
            load_error(r#"allowed_outbound_hosts = ["https://{{ size }}/x"]"#),
            "Failed to load component `one`: `allowed_outbound_hosts` is malformed: using \
             default variable value(s) with template \"https://{{ size }}/x\" results in \
             invalid config \"https://10/x\": Invalid allowed host \"10/x\": must not include \
             a path"
        );
        assert!(
            load_error(r#"allowed_http_hosts = ["ftp://a.dev"]"#).starts_with(
                "Failed to load component `one`: `allowed_http_hosts` is malformed: One or more \
                 allowed_http_hosts entries was invalid:\nftp://a.dev isn't a valid host"
            )
        );
        // `token` is required (no default): checked per instance, not at load.
        let text = MANIFEST.replace(
            "environment = { K = \"v\" }",
            "environment = { K = \"v\" }\nallowed_outbound_hosts = [\"https://{{ token }}/x\"]",
        );
        assert!(Manifest::parse(&text, PathBuf::new()).is_ok());
    }

    #[test]
    fn a_variable_with_both_default_and_required_is_refused() {
        let text = MANIFEST.replace(
            r#"size = { default = "10" }"#,
            r#"size = { default = "10", required = true }"#,
        );
        assert!(Manifest::parse(&text, PathBuf::new()).is_err());
    }

    #[test]
    fn a_trigger_for_an_unknown_component_is_refused() {
        let text = MANIFEST.replace(r#"component = "one""#, r#"component = "two""#);
        assert!(Manifest::parse(&text, PathBuf::new()).is_err());
    }

    const TWO_COMPONENTS: &str = r#"
        spin_manifest_version = 2
        [application]
        name = "t"
        [[trigger.http]]
        route = "/a/..."
        component = "one"
        [[trigger.http]]
        route = "/b"
        component = "two"
        [[trigger.http]]
        route = { private = true }
        component = "two"
        [component.one]
        source = "one.wasm"
        [component.two]
        source = "two.wasm"
        [component.lonely]
        source = "lonely.wasm"
    "#;

    fn retained(ids: &[&str]) -> anyhow::Result<Manifest> {
        let mut manifest = Manifest::parse(TWO_COMPONENTS, PathBuf::new())?;
        let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        manifest.retain_components(&ids)?;
        Ok(manifest)
    }

    fn component_ids(manifest: &Manifest) -> Vec<&str> {
        manifest.components.keys().map(String::as_str).collect()
    }

    #[test]
    fn retaining_keeps_the_listed_components_triggers_only() {
        let two = retained(&["two"]).unwrap();
        assert_eq!(component_ids(&two), vec!["two"]);
        assert_eq!(
            two.triggers,
            vec![
                HttpTrigger {
                    route: Some("/b".into()),
                    component: "two".into()
                },
                HttpTrigger {
                    route: None,
                    component: "two".into()
                },
            ]
        );
        // No ids is `spin up` without `-c`: everything stays, triggerless components too.
        assert_eq!(
            component_ids(&retained(&[]).unwrap()),
            vec!["lonely", "one", "two"]
        );
    }

    #[test]
    fn a_listed_component_without_a_trigger_is_dropped_too() {
        let manifest = retained(&["one", "lonely"]).unwrap();
        assert_eq!(component_ids(&manifest), vec!["one"]);
        let error = retained(&["lonely"]).unwrap_err();
        assert_eq!(format!("{error:#}"), "No triggers in app");
    }

    #[test]
    fn an_unknown_component_id_is_refused_with_spins_message() {
        let error = retained(&["one", "nope"]).unwrap_err();
        assert_eq!(
            format!("{error:#}"),
            "failed to resolve application with only components selected with --component: \
             Specified component \"nope\" not found in application"
        );
    }

    #[test]
    fn source_falls_back_to_cargo_target_dir() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::create_dir_all(target.join("wasm32-wasip2/release")).unwrap();
        std::fs::write(target.join("wasm32-wasip2/release/one.wasm"), b"").unwrap();
        let manifest = Manifest::parse(MANIFEST, dir.path().join("app")).unwrap();

        assert_eq!(
            manifest.component_source("one", Some(&target)).unwrap(),
            target.join("wasm32-wasip2/release/one.wasm")
        );
        let missing = manifest.component_source("one", None).unwrap_err();
        assert!(missing.to_string().contains("run tests/run"), "{missing}");
    }

    #[test]
    fn nested_relative_target_sources_fall_back_too() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("t/wasm32-wasip2/release")).unwrap();
        std::fs::write(dir.path().join("t/wasm32-wasip2/release/one.wasm"), b"").unwrap();
        let text = MANIFEST.replace(
            "target/wasm32-wasip2/release/one.wasm",
            "../../target/wasm32-wasip2/release/one.wasm",
        );
        let manifest = Manifest::parse(&text, dir.path().join("a/b")).unwrap();
        assert_eq!(
            manifest
                .component_source("one", Some(&dir.path().join("t")))
                .unwrap(),
            dir.path().join("t/wasm32-wasip2/release/one.wasm")
        );
    }
}
