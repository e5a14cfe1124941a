//! Push receivers: where a container registry tells us it stored an image, and how the sender
//! proves it is the registry the receiver was made for.
//!
//! A receiver's secret is never stored. It is an HMAC of the receiver's id under the
//! deployment's `webhook_signing_key` (a secret Spin variable): the database holds nothing
//! that authenticates a sender, and rotating the variable rotates every receiver's secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::Error;

use super::ids::ReceiverId;
use super::image::VersionChange;
use super::{Channel, OrgId, RegistryId, Timestamp};

/// The registry product a receiver takes pushes from: it fixes the payload's shape and how
/// the sender authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Harbor `PUSH_ARTIFACT` (default JSON or CloudEvents); `Authorization` as configured.
    Harbor,
    /// GitHub Packages (`registry_package` / `package` events); `X-Hub-Signature-256`.
    Ghcr,
    /// Azure Container Registry webhooks and Event Grid; a configured `Authorization` header.
    Acr,
    /// Docker Hub; the secret as the URL's last segment.
    Dockerhub,
    /// Quay `repo_push`; the secret as the URL's last segment.
    Quay,
    /// Our own `{repository, tag, digest, pushed_at}`, signed per Standard Webhooks.
    Generic,
}

impl Source {
    pub(crate) const ALL: [Source; 6] = [
        Source::Harbor,
        Source::Ghcr,
        Source::Acr,
        Source::Dockerhub,
        Source::Quay,
        Source::Generic,
    ];

    pub(crate) fn parse(field: &str, value: &str) -> Result<Source, Error> {
        Source::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    "must be one of harbor, ghcr, acr, dockerhub, quay, generic",
                )
            })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Source::Harbor => "harbor",
            Source::Ghcr => "ghcr",
            Source::Acr => "acr",
            Source::Dockerhub => "dockerhub",
            Source::Quay => "quay",
            Source::Generic => "generic",
        }
    }

    /// Docker Hub and Quay can send nothing but a URL: their secret is its last segment.
    pub(crate) fn secret_in_path(self) -> bool {
        matches!(self, Source::Dockerhub | Source::Quay)
    }
}

/// What a push of a tag no pipeline recorded does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum UnknownTag {
    /// A new image entry, versioned on the receiver's channel (the default).
    #[default]
    Record,
    /// Nothing: the delivery is acknowledged and the push left out.
    Ignore,
}

impl UnknownTag {
    pub(crate) fn parse(field: &str, value: &str) -> Result<UnknownTag, Error> {
        match value {
            "record" => Ok(UnknownTag::Record),
            "ignore" => Ok(UnknownTag::Ignore),
            _ => Err(Error::invalid(field, "must be record or ignore")),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            UnknownTag::Record => "record",
            UnknownTag::Ignore => "ignore",
        }
    }
}

/// A registry's receiver.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Receiver {
    pub(crate) receiver_id: ReceiverId,
    pub(crate) registry_id: RegistryId,
    pub(crate) org_id: OrgId,
    pub(crate) source: Source,
    /// The channel and update type of images recorded for unknown tags (`default`, `patch`
    /// when absent).
    pub(crate) channel: Option<Channel>,
    pub(crate) update_type: Option<VersionChange>,
    pub(crate) on_unknown_tag: UnknownTag,
    pub(crate) created_at: Timestamp,
}

/// An OCI content digest as registries send them: `sha256:` and 64 lowercase hex digits, or
/// `sha512:` and 128.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Digest(String);

impl Digest {
    pub(crate) fn parse(field: &str, value: &str) -> Result<Digest, Error> {
        let hex_len = match value.split_once(':') {
            Some(("sha256", hex)) if hex.len() == 64 => Some(hex),
            Some(("sha512", hex)) if hex.len() == 128 => Some(hex),
            _ => None,
        };
        match hex_len {
            Some(hex)
                if hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
            {
                Ok(Digest(value.to_owned()))
            }
            _ => Err(Error::invalid(
                field,
                "must be an OCI digest: sha256: and 64 lowercase hex digits (or sha512: and 128)",
            )),
        }
    }

    pub(crate) fn from_stored(value: String) -> Digest {
        Digest(value)
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The deployment's key for receiver secrets (`webhook_signing_key`): at least 32 bytes, so
/// the secrets it derives are as strong as the HMAC.
#[derive(Clone)]
pub(crate) struct SigningKey(Vec<u8>);

impl SigningKey {
    pub(crate) const MIN_LEN: usize = 32;

    /// The key, or why webhooks are off (the variable unset, or too short to be a key).
    pub(crate) fn from_variable(value: Option<&str>) -> Result<SigningKey, Error> {
        match value.map(str::trim) {
            None | Some("") => Err(Error::NotConfigured {
                detail: "webhooks are off: set the Spin variable webhook_signing_key \
                         (at least 32 random characters) to use receivers"
                    .to_owned(),
            }),
            Some(key) if key.len() < Self::MIN_LEN => Err(Error::NotConfigured {
                detail: format!(
                    "webhooks are off: webhook_signing_key is shorter than {} characters",
                    Self::MIN_LEN
                ),
            }),
            Some(key) => Ok(SigningKey(key.as_bytes().to_vec())),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length")
    }

    /// The receiver's 32 secret bytes: HMAC-SHA256 of a label and the receiver id.
    pub(crate) fn receiver_secret(&self, receiver_id: ReceiverId) -> DerivedSecret {
        self.derive("cd-images receiver secret v1 ", &receiver_id.to_text())
    }

    /// The 32 bytes a subscription's deliveries are signed with (`whsec_…` as shown).
    pub(crate) fn subscription_secret(
        &self,
        subscription_id: super::ids::SubscriptionId,
    ) -> DerivedSecret {
        self.derive(
            "cd-images subscription secret v1 ",
            &subscription_id.to_text(),
        )
    }

    /// HMAC-SHA256 of a purpose label and an id: one secret per purpose and resource.
    fn derive(&self, purpose: &str, id: &str) -> DerivedSecret {
        let mut mac = self.mac();
        mac.update(purpose.as_bytes());
        mac.update(id.as_bytes());
        DerivedSecret(mac.finalize().into_bytes().into())
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

/// A derived secret: what a receiver's sender is configured with, or what a subscription's
/// deliveries are signed with, in the form its source (or Standard Webhooks) takes.
pub(crate) struct DerivedSecret([u8; 32]);

impl DerivedSecret {
    /// As the sender is configured with it: Standard Webhooks' `whsec_<base64>` for `generic`,
    /// 64 hex digits elsewhere (safe in a header and in a URL path).
    pub(crate) fn shown(&self, source: Source) -> String {
        use base64::Engine;
        match source {
            Source::Generic => format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(self.0)
            ),
            _ => hex::encode(self.0),
        }
    }

    /// Whether `presented` is the secret as shown for `source`, compared in constant time.
    pub(crate) fn matches(&self, source: Source, presented: &str) -> bool {
        let expected = self.shown(source);
        bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// Whether `signature` (`sha256=<hex>`, GitHub's `X-Hub-Signature-256`) is the HMAC of
    /// `body` under the secret as shown, checked in constant time.
    pub(crate) fn signs(&self, source: Source, body: &[u8], signature: &str) -> bool {
        let Some(Ok(tag)) = signature.strip_prefix("sha256=").map(hex::decode) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(self.shown(source).as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(body);
        mac.verify_slice(&tag).is_ok()
    }

    /// The Standard Webhooks verifier keyed with this secret (`generic`).
    pub(crate) fn standard_webhook(&self) -> standardwebhooks::Webhook {
        standardwebhooks::Webhook::from_bytes(self.0.to_vec())
            .expect("any bytes are a Standard Webhooks key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_variable(Some("0123456789abcdef0123456789abcdef")).unwrap()
    }

    fn id(n: u8) -> ReceiverId {
        ReceiverId::new(uuid::Uuid::from_bytes([n; 16]))
    }

    #[test]
    fn secrets_are_derived_per_receiver_and_rotate_with_the_key() {
        let a = key().receiver_secret(id(1)).shown(Source::Harbor);
        assert_eq!(a, key().receiver_secret(id(1)).shown(Source::Harbor));
        assert_eq!(a.len(), 64);
        assert_ne!(a, key().receiver_secret(id(2)).shown(Source::Harbor));
        let rotated = SigningKey::from_variable(Some("another key of at least 32 characters"))
            .unwrap()
            .receiver_secret(id(1))
            .shown(Source::Harbor);
        assert_ne!(a, rotated);
        assert!(
            key()
                .receiver_secret(id(1))
                .shown(Source::Generic)
                .starts_with("whsec_")
        );
    }

    #[test]
    fn a_missing_or_short_key_turns_webhooks_off() {
        for value in [None, Some(""), Some("   "), Some("short")] {
            assert!(matches!(
                SigningKey::from_variable(value),
                Err(Error::NotConfigured { .. })
            ));
        }
    }

    #[test]
    fn secrets_and_signatures_match_only_exactly() {
        let secret = key().receiver_secret(id(1));
        let shown = secret.shown(Source::Quay);
        assert!(secret.matches(Source::Quay, &shown));
        assert!(!secret.matches(Source::Quay, &shown[..63]));
        assert!(!secret.matches(Source::Quay, ""));
        let mut mac = Hmac::<Sha256>::new_from_slice(shown.as_bytes()).unwrap();
        mac.update(b"{}");
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(secret.signs(Source::Ghcr, b"{}", &signature));
        assert!(!secret.signs(Source::Ghcr, b"{} ", &signature));
        assert!(!secret.signs(Source::Ghcr, b"{}", "sha256=zz"));
        assert!(!secret.signs(Source::Ghcr, b"{}", &signature[7..]));
    }

    #[test]
    fn digests_are_oci_sha256_or_sha512_in_lowercase_hex() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert!(Digest::parse("digest", &ok).is_ok());
        assert!(Digest::parse("digest", &format!("sha512:{}", "0".repeat(128))).is_ok());
        for bad in [
            "",
            "sha256:",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha256:{}", "a".repeat(63)),
            &format!("md5:{}", "a".repeat(32)),
            &"a".repeat(64),
        ] {
            assert!(Digest::parse("digest", bad).is_err(), "{bad}");
        }
    }
}
