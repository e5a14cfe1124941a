//! The JSON forms of an image's list fields (`tags`, `image_ports`, `cluster_image_tags`): how
//! they are stored in their JSON text columns and how they appear on the wire. One shape for
//! both, so a value round-trips exactly: what a pipeline sends is what it reads back.

use serde::{Deserialize, Serialize};

use crate::domain::image::{ClusterImageTag, ImagePort};
use crate::error::Error;

/// A port as JSON: `{"port": 8080, "protocol": "tcp", "name": "http"}` (optional keys omitted).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct PortJson {
    pub(crate) port: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
}

/// A cluster image tag as JSON: `{"cluster_id": "eu-1", "tag": "default-1.2.3"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterImageTagJson {
    pub(crate) cluster_id: String,
    pub(crate) tag: String,
}

impl From<&ImagePort> for PortJson {
    fn from(port: &ImagePort) -> Self {
        PortJson {
            port: i64::from(port.port),
            protocol: port.protocol.clone(),
            name: port.name.clone(),
        }
    }
}

impl From<&ClusterImageTag> for ClusterImageTagJson {
    fn from(tag: &ClusterImageTag) -> Self {
        ClusterImageTagJson {
            cluster_id: tag.cluster_id.clone(),
            tag: tag.tag.clone(),
        }
    }
}

/// Validates wire ports into domain ports, naming `field[index]` on error.
pub(crate) fn parse_ports(field: &str, ports: Vec<PortJson>) -> Result<Vec<ImagePort>, Error> {
    if ports.len() > crate::domain::image::MAX_PORTS {
        return Err(Error::invalid(
            field,
            format!(
                "must have at most {} entries",
                crate::domain::image::MAX_PORTS
            ),
        ));
    }
    ports
        .into_iter()
        .enumerate()
        .map(|(i, p)| ImagePort::parse(&format!("{field}[{i}]"), p.port, p.protocol, p.name))
        .collect()
}

/// Validates wire cluster image tags into domain ones, naming `field[index]` on error.
pub(crate) fn parse_cluster_image_tags(
    field: &str,
    tags: Vec<ClusterImageTagJson>,
) -> Result<Vec<ClusterImageTag>, Error> {
    let max = crate::domain::image::MAX_CLUSTER_IMAGE_TAGS;
    if tags.len() > max {
        return Err(Error::invalid(
            field,
            format!("must have at most {max} entries"),
        ));
    }
    tags.into_iter()
        .enumerate()
        .map(|(i, t)| ClusterImageTag::parse(&format!("{field}[{i}]"), t.cluster_id, t.tag))
        .collect()
}

/// Column text for a list of strings.
pub(crate) fn encode_tags(tags: &[String]) -> String {
    serde_json::to_string(tags).expect("strings always serialise")
}

pub(crate) fn encode_ports(ports: &[ImagePort]) -> String {
    serde_json::to_string(&ports.iter().map(PortJson::from).collect::<Vec<_>>())
        .expect("ports always serialise")
}

pub(crate) fn encode_cluster_image_tags(tags: &[ClusterImageTag]) -> String {
    serde_json::to_string(
        &tags
            .iter()
            .map(ClusterImageTagJson::from)
            .collect::<Vec<_>>(),
    )
    .expect("cluster image tags always serialise")
}

fn decode<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T, Error> {
    serde_json::from_str(text)
        .map_err(|e| Error::storage(format!("unreadable JSON in images.{column}: {e}")))
}

pub(crate) fn decode_tags(text: &str) -> Result<Vec<String>, Error> {
    decode("tags", text)
}

pub(crate) fn decode_ports(text: &str) -> Result<Vec<ImagePort>, Error> {
    let ports: Vec<PortJson> = decode("image_ports", text)?;
    parse_ports("image_ports", ports)
        .map_err(|e| Error::storage(format!("stored image_ports invalid: {e}")))
}

pub(crate) fn decode_cluster_image_tags(text: &str) -> Result<Vec<ClusterImageTag>, Error> {
    let tags: Vec<ClusterImageTagJson> = decode("cluster_image_tags", text)?;
    parse_cluster_image_tags("cluster_image_tags", tags)
        .map_err(|e| Error::storage(format!("stored cluster_image_tags invalid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_round_trip_exactly_with_absent_keys_left_absent() {
        let text = r#"[{"port":8080,"protocol":"TCP","name":"http"},{"port":9090}]"#;
        let ports = decode_ports(text).unwrap();
        assert_eq!(
            ports[1],
            ImagePort {
                port: 9090,
                protocol: None,
                name: None
            }
        );
        assert_eq!(encode_ports(&ports), text);
    }

    #[test]
    fn cluster_image_tags_and_tags_round_trip_exactly() {
        let text = r#"[{"cluster_id":"eu-1 'prod'","tag":"default-1.2.3"}]"#;
        assert_eq!(
            encode_cluster_image_tags(&decode_cluster_image_tags(text).unwrap()),
            text
        );
        let tags = vec![
            "ünïcode".to_owned(),
            "a\"quote".to_owned(),
            "x'); DROP TABLE images;--".to_owned(),
        ];
        assert_eq!(decode_tags(&encode_tags(&tags)).unwrap(), tags);
    }

    #[test]
    fn invalid_stored_json_is_a_storage_error_not_a_panic() {
        assert_eq!(
            decode_ports("{not json").unwrap_err().status(),
            http::StatusCode::INTERNAL_SERVER_ERROR
        );
        assert!(decode_ports(r#"[{"port":0}]"#).is_err());
    }

    #[test]
    fn wire_ports_name_the_offending_entry() {
        let ports = vec![
            PortJson {
                port: 80,
                protocol: None,
                name: None,
            },
            PortJson {
                port: 70000,
                protocol: None,
                name: None,
            },
        ];
        let error = parse_ports("image_ports", ports).unwrap_err();
        assert_eq!(
            error.problem().field.as_deref(),
            Some("image_ports[1].port")
        );
    }
}
