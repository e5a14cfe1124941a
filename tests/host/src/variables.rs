//! Spin variables: the application's `[variables]`, each component's templates, and
//! `fermyon:spin/variables@2.0.0` for the guest.
//!
//! Resolution follows Spin's provider order — runtime values (`--variable k=v`), then
//! `SPIN_VARIABLE_<NAME_UPPERCASE>` from the environment, then the manifest default — and is
//! redone on every `get` (Spin does not cache). A required variable nobody provides fails
//! [`Resolver::new`], as it fails `spin up`. Error texts are Spin's (expressions crate).

use crate::bindings::fermyon::spin::variables as wit;
use crate::manifest::Manifest;
use anyhow::bail;
use std::collections::{BTreeMap, HashMap};

/// Checks a variable name as Spin does: lower-case letters, digits and single underscores,
/// starting with a letter and ending with a letter or digit. The error is Spin's reason text.
pub fn validate_name(key: &str) -> Result<(), String> {
    let reason = if key.is_empty() {
        "must not be empty".to_string()
    } else if let Some(invalid) = key
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        format!(
            "invalid character {invalid:?}. Variable names may contain only lower-case letters, numbers, and underscores."
        )
    } else if !key.starts_with(|c: char| c.is_ascii_lowercase()) {
        "must start with a lowercase ASCII letter".to_string()
    } else if !key.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        "must end with a lowercase ASCII letter or digit".to_string()
    } else if key.contains("__") {
        "must not contain multiple consecutive underscores".to_string()
    } else {
        return Ok(());
    };
    Err(format!("{key:?}: {reason}"))
}

/// A parsed `"text {{ var }} text"` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Part>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

impl Template {
    /// Parses a template; `{{ name }}` references an application variable, whose name must be
    /// valid.
    pub fn parse(text: &str) -> anyhow::Result<Template> {
        let template = Self::parse_unchecked(text)?;
        for name in template.variables() {
            validate_name(name).map_err(|reason| anyhow::anyhow!("invalid template: {reason}"))?;
        }
        Ok(template)
    }

    /// Parses a template without checking the names in it, as Spin's `Template::new` does for
    /// `allowed_outbound_hosts` entries: a bad name there is only an error when the entry is
    /// resolved (it then fails like an unknown variable).
    pub fn parse_unchecked(text: &str) -> anyhow::Result<Template> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                // Spin's text (expressions' `Error::InvalidTemplate`).
                bail!("invalid variable template: unmatched '{{{{' in template");
            };
            parts.push(Part::Variable(after[..end].trim().to_string()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Template(parts))
    }

    /// Whether the template has no `{{ .. }}` expression.
    pub fn is_literal(&self) -> bool {
        self.variables().next().is_none()
    }

    /// The application variables the template names, in order.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|part| match part {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// The template with every expression replaced by `value(name)`; the first error wins.
    pub fn render<E>(&self, mut value: impl FnMut(&str) -> Result<String, E>) -> Result<String, E> {
        let mut text = String::new();
        for part in &self.0 {
            match part {
                Part::Literal(literal) => text.push_str(literal),
                Part::Variable(name) => text.push_str(&value(name)?),
            }
        }
        Ok(text)
    }
}

/// Spin's rendering (expressions' `Display`): expressions come out as `{{ name }}`, so error
/// messages quote a template the way Spin does.
impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|part| match part {
            Part::Literal(literal) => f.write_str(literal),
            Part::Variable(name) => write!(f, "{{{{ {name} }}}}"),
        })
    }
}

/// Why a variable could not be read (mirrors the WIT `error` variant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariableError {
    InvalidName(String),
    Undefined(String),
    Provider(String),
}

/// Spin's texts (expressions' `Error`).
impl std::fmt::Display for VariableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VariableError::InvalidName(name) => write!(f, "invalid variable name: {name}"),
            VariableError::Undefined(what) => write!(f, "undefined variable: {what}"),
            VariableError::Provider(message) => write!(f, "provider error: {message}"),
        }
    }
}

impl std::error::Error for VariableError {}

/// Resolves variables for every component of an application.
#[derive(Debug)]
pub struct Resolver {
    defaults: BTreeMap<String, Option<String>>,
    components: HashMap<String, BTreeMap<String, Template>>,
    runtime: HashMap<String, String>,
    env: HashMap<String, String>,
}

impl Resolver {
    /// Builds the resolver and checks the manifest's templates and required variables.
    ///
    /// `runtime` plays `spin up --variable k=v`; `env` is where `SPIN_VARIABLE_*` are read.
    pub fn new(
        manifest: &Manifest,
        runtime: HashMap<String, String>,
        env: HashMap<String, String>,
    ) -> anyhow::Result<Resolver> {
        let defaults = manifest
            .variables
            .iter()
            .map(|(name, decl)| (name.clone(), decl.default.clone()))
            .collect::<BTreeMap<_, _>>();
        let mut components = HashMap::new();
        for (id, component) in &manifest.components {
            let mut templates = BTreeMap::new();
            for (key, text) in &component.variables {
                validate_name(key)
                    .map_err(|reason| anyhow::anyhow!("invalid variable name: {reason}"))?;
                let template = Template::parse(text)?;
                if let Some(unknown) = template.variables().find(|v| !defaults.contains_key(*v)) {
                    bail!(
                        "invalid variable template: unknown variable {unknown:?} (component {id:?}, key {key:?})"
                    );
                }
                templates.insert(key.clone(), template);
            }
            components.insert(id.clone(), templates);
        }
        let resolver = Resolver {
            defaults,
            components,
            runtime,
            env,
        };
        let missing: Vec<&str> = resolver
            .defaults
            .keys()
            .filter(|name| resolver.resolve_variable(name).is_err())
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            bail!(
                "no provider resolved required variable(s): {}",
                missing.join(", ")
            );
        }
        Ok(resolver)
    }

    /// One application variable's value (first provider with a value wins).
    fn resolve_variable(&self, name: &str) -> Result<String, VariableError> {
        if let Some(value) = self.runtime.get(name) {
            return Ok(value.clone());
        }
        let env_name = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
        if let Some(value) = self.env.get(&env_name) {
            return Ok(value.clone());
        }
        match self.defaults.get(name) {
            Some(Some(default)) => Ok(default.clone()),
            Some(None) => Err(VariableError::Provider(format!(
                "no provider resolved required variable {name:?}"
            ))),
            None => Err(VariableError::InvalidName(name.to_string())),
        }
    }

    /// What component `component_id` gets for `variables::get(key)`.
    pub fn get(&self, component_id: &str, key: &str) -> Result<String, VariableError> {
        validate_name(key).map_err(VariableError::InvalidName)?;
        let template = self
            .components
            .get(component_id)
            .and_then(|templates| templates.get(key))
            .ok_or_else(|| {
                VariableError::Undefined(format!("no variable for {component_id:?}.{key:?}"))
            })?;
        template.render(|name| self.resolve_variable(name))
    }

    /// Every application variable resolved through the providers now, as Spin's
    /// `ProviderResolver::prepare` (what `allowed_outbound_hosts` templates are resolved
    /// against, once per instance). One variable failing fails it all.
    pub fn prepare(&self) -> Result<PreparedVariables, VariableError> {
        let values = self
            .defaults
            .keys()
            .map(|name| Ok((name.clone(), self.resolve_variable(name)?)))
            .collect::<Result<_, VariableError>>()?;
        Ok(PreparedVariables(values))
    }
}

/// All application variables, resolved (Spin's `PreparedResolver`).
#[derive(Debug, Clone, Default)]
pub struct PreparedVariables(BTreeMap<String, String>);

impl PreparedVariables {
    /// Renders `template`; a name that is not an application variable is `InvalidName`.
    pub fn resolve_template(&self, template: &Template) -> Result<String, VariableError> {
        template.render(|name| {
            self.0
                .get(name)
                .cloned()
                .ok_or_else(|| VariableError::InvalidName(name.to_string()))
        })
    }
}

impl wit::Host for crate::server::State {
    fn get(&mut self, name: String) -> Result<String, wit::Error> {
        self.variables
            .get(&self.component_id, &name)
            .map_err(|error| match error {
                VariableError::InvalidName(message) => wit::Error::InvalidName(message),
                VariableError::Undefined(message) => wit::Error::Undefined(message),
                VariableError::Provider(message) => wit::Error::Provider(message),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const MANIFEST: &str = r#"
        spin_manifest_version = 2
        [application]
        name = "t"
        [variables]
        token = { required = true }
        size = { default = "10" }
        [component.one]
        source = "one.wasm"
        [component.one.variables]
        bearer = "Bearer {{ token }}!"
        size = "{{size}}"
        both = "{{ size }}-{{ token }}"
        [component.two]
        source = "two.wasm"
    "#;

    fn manifest() -> Manifest {
        Manifest::parse(MANIFEST, PathBuf::new()).unwrap()
    }

    fn resolver(runtime: &[(&str, &str)], env: &[(&str, &str)]) -> anyhow::Result<Resolver> {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Resolver::new(&manifest(), map(runtime), map(env))
    }

    #[test]
    fn a_required_variable_without_a_value_fails_start_up() {
        let error = resolver(&[], &[]).unwrap_err().to_string();
        assert_eq!(error, "no provider resolved required variable(s): token");
    }

    #[test]
    fn runtime_values_beat_the_environment_which_beats_defaults() {
        let r = resolver(&[("token", "rt")], &[("SPIN_VARIABLE_TOKEN", "env")]).unwrap();
        assert_eq!(r.get("one", "bearer").unwrap(), "Bearer rt!");
        let r = resolver(&[], &[("SPIN_VARIABLE_TOKEN", "env")]).unwrap();
        assert_eq!(r.get("one", "bearer").unwrap(), "Bearer env!");
        assert_eq!(r.get("one", "size").unwrap(), "10");
        assert_eq!(r.get("one", "both").unwrap(), "10-env");
        let r = resolver(&[("token", "t"), ("size", "3")], &[]).unwrap();
        assert_eq!(r.get("one", "size").unwrap(), "3");
    }

    #[test]
    fn guests_see_only_their_own_keys() {
        let r = resolver(&[("token", "t")], &[]).unwrap();
        assert_eq!(
            r.get("two", "bearer"),
            Err(VariableError::Undefined(
                "no variable for \"two\".\"bearer\"".into()
            ))
        );
        assert_eq!(
            r.get("one", "token"),
            Err(VariableError::Undefined(
                "no variable for \"one\".\"token\"".into()
            ))
        );
    }

    #[test]
    fn invalid_names_get_spins_message() {
        let r = resolver(&[("token", "t")], &[]).unwrap();
        assert_eq!(
            r.get("one", "Foo"),
            Err(VariableError::InvalidName(
                "\"Foo\": invalid character 'F'. Variable names may contain only lower-case letters, numbers, and underscores.".into()
            ))
        );
        for bad in ["", "1a", "a_", "a__b", "x-y"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        for good in ["a", "abc", "a1b2", "a_1_b"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn a_template_naming_an_undeclared_variable_fails_load() {
        let text = MANIFEST.replace("{{size}}", "{{ nope }}");
        let manifest = Manifest::parse(&text, PathBuf::new()).unwrap();
        let env = HashMap::from([("SPIN_VARIABLE_TOKEN".to_string(), "t".to_string())]);
        let error = Resolver::new(&manifest, HashMap::new(), env).unwrap_err();
        assert!(
            error.to_string().contains("unknown variable \"nope\""),
            "{error}"
        );
    }

    #[test]
    fn templates_parse_literals_and_expressions() {
        assert_eq!(
            Template::parse("a {{ b }} c").unwrap(),
            Template(vec![
                Part::Literal("a ".into()),
                Part::Variable("b".into()),
                Part::Literal(" c".into())
            ])
        );
        assert!(Template::parse("a {{ b").is_err());
    }
}
