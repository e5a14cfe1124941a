//! Image registries: a repository of images in one container registry.

use crate::Error;

use super::{OrgId, RegistryId, Timestamp};

/// A repository name as the OCI distribution spec defines it: `/`-separated path components,
/// each `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, at most 255 characters in all
/// (e.g. `team/service-api`). Anything else could never be pushed or pulled, so it is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageRepositoryName(String);

impl ImageRepositoryName {
    pub(crate) const MAX_LEN: usize = 255;

    pub(crate) fn parse(value: &str) -> Result<ImageRepositoryName, Error> {
        const FIELD: &str = "image_repository_name";
        if value.is_empty() {
            return Err(Error::invalid(FIELD, super::EMPTY));
        }
        if value.len() > Self::MAX_LEN {
            return Err(Error::invalid(FIELD, "must be at most 255 characters"));
        }
        if !value.split('/').all(is_path_component) {
            return Err(Error::invalid(
                FIELD,
                "must be an OCI repository name: lowercase path components like team/service-api",
            ));
        }
        Ok(ImageRepositoryName(value.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// One path component: alphanumeric runs joined by `.`, `_`, `__` or one or more `-`.
fn is_path_component(component: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes: Vec<char> = component.chars().collect();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(*first) || !alnum(*last) {
        return false;
    }
    let mut index = 0;
    while index < bytes.len() {
        if alnum(bytes[index]) {
            index += 1;
            continue;
        }
        // A separator run between two alphanumerics.
        let start = index;
        while index < bytes.len() && !alnum(bytes[index]) {
            index += 1;
        }
        let separator: String = bytes[start..index].iter().collect();
        let allowed = separator == "."
            || separator == "_"
            || separator == "__"
            || separator.chars().all(|c| c == '-');
        if !allowed {
            return false;
        }
    }
    true
}

/// The id of the container registry (e.g. `ghcr`, an internal UUID): stored verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContainerRegistryId(String);

impl ContainerRegistryId {
    pub(crate) const MAX_LEN: usize = 255;

    pub(crate) fn parse(value: &str) -> Result<ContainerRegistryId, Error> {
        super::check_text("container_registry_id", value, Self::MAX_LEN)?;
        Ok(ContainerRegistryId(value.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A reference to the vault entry holding the registry's pull/push token. Never the secret
/// itself: we store where it is, not what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenVaultId(String);

impl TokenVaultId {
    pub(crate) const MAX_LEN: usize = 255;

    pub(crate) fn parse(value: &str) -> Result<TokenVaultId, Error> {
        super::check_text("token_vault_id", value, Self::MAX_LEN)?;
        Ok(TokenVaultId(value.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// An image registry as stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ImageRegistry {
    pub(crate) registry_id: RegistryId,
    pub(crate) org_id: OrgId,
    pub(crate) image_repository_name: ImageRepositoryName,
    pub(crate) public: bool,
    pub(crate) container_registry_id: ContainerRegistryId,
    pub(crate) token_vault_id: Option<TokenVaultId>,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
}

/// The fields a client may change on a registry; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RegistryChanges {
    pub(crate) image_repository_name: Option<ImageRepositoryName>,
    pub(crate) public: Option<bool>,
    pub(crate) container_registry_id: Option<ContainerRegistryId>,
    /// `Some(None)` clears the vault reference.
    pub(crate) token_vault_id: Option<Option<TokenVaultId>>,
}

impl ImageRegistry {
    /// The registry with `changes` applied.
    pub(crate) fn with_changes(
        mut self,
        changes: RegistryChanges,
        now: Timestamp,
    ) -> ImageRegistry {
        if let Some(name) = changes.image_repository_name {
            self.image_repository_name = name;
        }
        if let Some(public) = changes.public {
            self.public = public;
        }
        if let Some(id) = changes.container_registry_id {
            self.container_registry_id = id;
        }
        if let Some(vault) = changes.token_vault_id {
            self.token_vault_id = vault;
        }
        self.updated_at = now;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_the_oci_grammar() {
        for ok in [
            "app", "team/app", "a/b/c", "my-app", "my--app", "my_app", "my__app", "my.app", "0x",
        ] {
            assert!(ImageRepositoryName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "App",
            "-app",
            "app-",
            "team//app",
            "/app",
            "app/",
            "my___app",
            "my._app",
            "app:tag",
            "app'; DROP TABLE image_registries;--",
            "äpp",
            &"a".repeat(256),
        ] {
            assert!(ImageRepositoryName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn free_text_ids_are_kept_verbatim_but_bounded() {
        let sql = "x'); DROP TABLE image_registries; --";
        assert_eq!(ContainerRegistryId::parse(sql).unwrap().as_str(), sql);
        assert!(ContainerRegistryId::parse("").is_err());
        assert!(TokenVaultId::parse(&"v".repeat(256)).is_err());
        assert!(TokenVaultId::parse("line\nbreak").is_err());
    }
}
