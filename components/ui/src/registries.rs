//! Registries, a registry's channels and recent images, and one image's provenance: its
//! commits, build, push and each deployment, with the time each step took, and the
//! deliveries sent for it.
//!
//! A public registry's pages are open without signing in (the API answers them without a
//! token); what needs the org's token (deployments, deliveries) is left out for them.

use maud::{Markup, html};
use serde_json::Value;

use crate::Rendered;
use crate::api::{Api, ApiFailure, segment};
use crate::format;
use crate::layout::Section;
use crate::text::inert_or_dash;

/// Recent images a registry page lists.
const RECENT_IMAGES: usize = 20;

fn items(answer: &Value) -> &[Value] {
    answer["items"].as_array().map_or(&[], Vec::as_slice)
}

fn text(value: &Value) -> Option<&str> {
    value.as_str()
}

pub(crate) fn list(api: &Api<'_>) -> Result<Rendered, ApiFailure> {
    let registries = api.get("/registries?limit=500")?;
    let body = html! {
        div.table-wrap {
            table #registries {
                thead { tr { th scope="col" { "Repository" } th scope="col" { "Visibility" } th scope="col" { "Created" } } }
                tbody {
                    @for registry in items(&registries) {
                        @let id = registry["registry_id"].as_str().unwrap_or("");
                        tr {
                            td { a href={"/ui/registries/" (segment(id))} { (inert_or_dash(text(&registry["image_repository_name"]))) } }
                            td { @if registry["public"].as_bool() == Some(true) { "public" } @else { "private" } }
                            td { (format::instant(&registry["created_at"])) }
                        }
                    }
                }
            }
        }
        @if items(&registries).is_empty() {
            p.note { "No registries yet: a pipeline creates one with POST /api/v1/registries." }
        }
    };
    Ok(Rendered {
        title: "Registries".to_owned(),
        section: Section::Registries,
        body,
    })
}

/// Where an image runs: its deployments' app environments and outcomes, newest first.
fn deployments_of(api: &Api<'_>, image_id: &str, limit: usize) -> Option<Vec<Value>> {
    if !api.signed_in() {
        return None;
    }
    api.get(&format!(
        "/deployments?image_id={}&limit={limit}",
        segment(image_id)
    ))
    .ok()
    .map(|page| items(&page).to_vec())
}

fn outcome(deployment: &Value) -> Markup {
    let status = deployment["status"].as_str().unwrap_or("");
    let kind = deployment["kind"].as_str().unwrap_or("");
    html! {
        span class=(status) { (status) }
        @if kind == "rework" {
            " " span.rework { "rework" }
        }
        @if !deployment["rollback_of"].is_null() {
            " " span.rework { "rollback" }
        }
    }
}

pub(crate) fn registry(api: &Api<'_>, registry_id: &str) -> Result<Rendered, ApiFailure> {
    let id = segment(registry_id);
    let registry = api.get(&format!("/registries/{id}"))?;
    let channels = api.get(&format!("/registries/{id}/channels?limit=100"))?;
    let images = api.get(&format!("/registries/{id}/images?limit={RECENT_IMAGES}"))?;
    let name = registry["image_repository_name"]
        .as_str()
        .unwrap_or(registry_id);
    let body = html! {
        p {
            @if registry["public"].as_bool() == Some(true) { "Public registry" } @else { "Private registry" }
            " · id " code { (registry_id) }
        }
        h2 { "Channels" }
        div.table-wrap {
            table #channels {
                thead { tr { th scope="col" { "Channel" } th scope="col" { "Current version" } th scope="col" { "Updated" } } }
                tbody {
                    @for channel in items(&channels) {
                        tr {
                            td { (inert_or_dash(text(&channel["channel"]))) }
                            td { code { (inert_or_dash(text(&channel["version"]))) } }
                            td { (format::instant(&channel["updated_at"])) }
                        }
                    }
                }
            }
        }
        h2 { "Recent images" }
        div.table-wrap {
            table #images {
                thead {
                    tr {
                        th scope="col" { "Version" } th scope="col" { "Tag" } th scope="col" { "Commit" }
                        th scope="col" { "Committer" } th scope="col" { "Run" } th scope="col" { "Digest" }
                        th scope="col" { "Built" } th scope="col" { "Pushed" } th scope="col" { "Where deployed" }
                    }
                }
                tbody {
                    @for image in items(&images) {
                        @let image_id = image["image_id"].as_str().unwrap_or("");
                        tr {
                            td { a href={"/ui/registries/" (id) "/images/" (segment(image_id))} { (inert_or_dash(text(&image["version"]))) } }
                            td { (inert_or_dash(text(&image["tag_name"]))) }
                            td { @match text(&image["git_hash"]) { Some(sha) => code title=(sha) { (format::short(sha)) }, None => "—" } }
                            td { (inert_or_dash(text(&image["committer"]))) }
                            td { (inert_or_dash(text(&image["run_id"]))) }
                            td { @match text(&image["digest"]) { Some(digest) => code title=(digest) { (format::short(digest)) }, None => "—" } }
                            td { (format::instant(&image["built_at"])) }
                            td { (format::instant(&image["pushed_at"])) }
                            td {
                                @match deployments_of(api, image_id, 10) {
                                    None => span.note { "sign in to see" },
                                    Some(deployments) if deployments.is_empty() => "not deployed",
                                    Some(deployments) => ul.plain {
                                        @for d in &deployments {
                                            li { (inert_or_dash(text(&d["app_id"]))) " / " (inert_or_dash(text(&d["environment"]))) " " (outcome(d)) }
                                        }
                                    },
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Rendered {
        title: name.to_owned(),
        section: Section::Registries,
        body,
    })
}

/// One step of an image's provenance.
struct Step {
    name: Markup,
    at: Value,
    /// Minutes since the step before.
    took: Option<f64>,
    detail: Markup,
    class: &'static str,
}

pub(crate) fn image(
    api: &Api<'_>,
    registry_id: &str,
    image_id: &str,
) -> Result<Rendered, ApiFailure> {
    let (rid, iid) = (segment(registry_id), segment(image_id));
    let image = api.get(&format!("/registries/{rid}/images/{iid}"))?;
    let commits = image["commits"].as_array().map_or(&[][..], Vec::as_slice);
    let mut deployments = deployments_of(api, image_id, 100).unwrap_or_default();
    deployments.reverse();
    let first_commit = commits
        .iter()
        .filter_map(|c| c["timestamp"].as_str())
        .min()
        .map(|t| Value::String(t.to_owned()))
        .unwrap_or_else(|| image["git_hash_commit_timestamp"].clone());

    let mut steps = vec![
        Step {
            name: html! { "Commits" },
            at: first_commit.clone(),
            took: None,
            detail: html! { (commits.len().max(usize::from(!image["git_hash"].is_null()))) " commit(s), the first at this time" },
            class: "",
        },
        Step {
            name: html! { "Build" },
            at: image["built_at"].clone(),
            took: format::minutes_between(&first_commit, &image["built_at"]),
            detail: html! { "run " (inert_or_dash(text(&image["run_id"]))) " · " (inert_or_dash(text(&image["image_name_with_tag"]))) },
            class: "",
        },
    ];
    if !image["pushed_at"].is_null() {
        steps.push(Step {
            name: html! { "Push" },
            at: image["pushed_at"].clone(),
            took: format::minutes_between(&image["built_at"], &image["pushed_at"]),
            detail: html! { "digest " code { (inert_or_dash(text(&image["digest"]))) } },
            class: "",
        });
    }
    let ready = if image["pushed_at"].is_null() {
        &image["built_at"]
    } else {
        &image["pushed_at"]
    };
    for d in &deployments {
        steps.push(Step {
            name: html! { "Deployed to " (inert_or_dash(text(&d["app_id"]))) " / " (inert_or_dash(text(&d["environment"]))) },
            at: d["created_at"].clone(),
            took: format::minutes_between(ready, &d["created_at"]),
            detail: html! {
                (outcome(d))
                @if let Some(run) = format::minutes_between(&d["started_at"], &d["created_at"]) {
                    " · rollout took " (format::minutes(run))
                }
            },
            class: if d["status"].as_str() == Some("failed") { "failed" } else { "" },
        });
    }
    let deliveries = deliveries_of(api, &rid, image_id, &deployments);
    let body = html! {
        p {
            "Version " code { (inert_or_dash(text(&image["version"]))) }
            " on channel " (inert_or_dash(text(&image["channel"])))
            " · committer " (inert_or_dash(text(&image["committer"])))
        }
        @if let Some(tags) = image["tags"].as_array().filter(|t| !t.is_empty()) {
            p #tags {
                "Tags: "
                @for (index, tag) in tags.iter().enumerate() {
                    @if index > 0 { ", " }
                    code { (inert_or_dash(tag.as_str())) }
                }
            }
        }
        @if let Some(message) = text(&image["commit_msg"]) {
            blockquote.commit-message { (crate::text::inert_lines(message)) }
        }
        h2 { "Provenance" }
        ol #provenance .provenance {
            @for step in &steps {
                li.step class=(step.class) {
                    h3 { (step.name) }
                    p {
                        (format::instant(&step.at))
                        @if let Some(took) = step.took {
                            " · took " data.took value=(took) { (format::minutes(took)) }
                        }
                    }
                    p.note { (step.detail) }
                }
            }
        }
        @if !api.signed_in() {
            p.note { "Sign in to see where this image was deployed and the deliveries sent for it." }
        }
        h2 { "Commits" }
        div.table-wrap {
            table #commits {
                thead { tr { th scope="col" { "Commit" } th scope="col" { "Author" } th scope="col" { "Time" } } }
                tbody {
                    @for commit in commits {
                        tr {
                            td { @match text(&commit["sha"]) { Some(sha) => code title=(sha) { (format::short(sha)) }, None => "—" } }
                            td { (inert_or_dash(text(&commit["author"]))) }
                            td { (format::instant(&commit["timestamp"])) }
                        }
                    }
                }
            }
        }
        h2 { "Deliveries" }
        div.table-wrap {
            table #deliveries {
                thead { tr { th scope="col" { "Event" } th scope="col" { "Occurred" } th scope="col" { "Status" } th.num scope="col" { "Attempts" } } }
                tbody {
                    @for delivery in &deliveries {
                        tr {
                            td { (inert_or_dash(text(&delivery["type"]))) }
                            td { (format::instant(&delivery["occurred_at"])) }
                            td class=(delivery["status"].as_str().unwrap_or("")) { (inert_or_dash(text(&delivery["status"]))) }
                            td.num { (delivery["attempts"].as_array().map_or(0, Vec::len)) }
                        }
                    }
                }
            }
        }
        @if deliveries.is_empty() {
            p.note { "No deliveries for this image." }
        }
        p { a href={"/ui/registries/" (rid)} { "Back to the registry" } }
    };
    Ok(Rendered {
        title: format!(
            "Image {}",
            image["image_name_with_tag"].as_str().unwrap_or(image_id)
        ),
        section: Section::Registries,
        body,
    })
}

/// The deliveries of the registry's subscriptions about this image or its deployments.
fn deliveries_of(
    api: &Api<'_>,
    registry: &str,
    image_id: &str,
    deployments: &[Value],
) -> Vec<Value> {
    if !api.signed_in() {
        return Vec::new();
    }
    let Ok(subscriptions) = api.get(&format!("/registries/{registry}/subscriptions?limit=100"))
    else {
        return Vec::new();
    };
    let subjects: Vec<&str> = std::iter::once(image_id)
        .chain(
            deployments
                .iter()
                .filter_map(|d| d["lead_time_id"].as_str()),
        )
        .collect();
    let mut found = Vec::new();
    for subscription in items(&subscriptions) {
        let Some(id) = subscription["subscription_id"].as_str() else {
            continue;
        };
        if let Ok(page) = api.get(&format!(
            "/registries/{registry}/subscriptions/{}/deliveries?limit=500",
            segment(id)
        )) {
            found.extend(
                items(&page)
                    .iter()
                    .filter(|d| {
                        d["subject_id"]
                            .as_str()
                            .is_some_and(|s| subjects.contains(&s))
                    })
                    .cloned(),
            );
        }
    }
    found
}
