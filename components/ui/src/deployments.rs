//! Deployments: a timeline per app environment, newest first, failures and rework
//! (rollbacks among them) marked in words as well as colour; and the org's failures.

use maud::html;
use serde_json::Value;

use crate::Rendered;
use crate::api::{Api, ApiFailure, param, query, segment};
use crate::format;
use crate::layout::Section;
use crate::text::inert_or_dash;

/// The deployments a timeline page reads (the newest).
const DEPLOYMENTS: usize = 100;
const FAILURES: usize = 50;

pub(crate) fn page(api: &Api<'_>, params: &[(String, String)]) -> Result<Rendered, ApiFailure> {
    let get = |name: &str| param(params, name);
    let limit = DEPLOYMENTS.to_string();
    let filters = query(&[
        ("project_id", get("project_id")),
        ("app_id", get("app_id")),
        ("environment", get("environment")),
        ("limit", Some(&limit)),
    ]);
    let deployments = api.get(&format!("/deployments{filters}"))?;
    let failures = api.get(&format!("/failures?limit={FAILURES}"))?;
    let items = deployments["items"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    // Grouped by app environment in order of each one's newest deployment.
    let mut groups: Vec<((String, String), Vec<&Value>)> = Vec::new();
    for d in items {
        let key = (
            d["app_id"].as_str().unwrap_or("").to_owned(),
            d["environment"].as_str().unwrap_or("").to_owned(),
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(d),
            None => groups.push((key, vec![d])),
        }
    }
    let failures = failures["items"].as_array().map_or(&[][..], Vec::as_slice);
    let body = html! {
        form.filters method="get" action="/ui/deployments" {
            label { "Project" input type="text" name="project_id" value=(get("project_id").unwrap_or("")) size="12"; }
            label { "App" input type="text" name="app_id" value=(get("app_id").unwrap_or("")) size="12"; }
            label { "Environment" input type="text" name="environment" value=(get("environment").unwrap_or("")) size="12"; }
            button type="submit" { "Apply" }
        }
        @if items.is_empty() {
            p.note { "No deployments recorded yet: a deploy tool records one with POST /api/v1/deployments." }
        }
        @if deployments["next_cursor"].is_string() {
            p.note { "The newest " (DEPLOYMENTS) " deployments are shown." }
        }
        @for ((app, environment), list) in &groups {
            section.timeline data-app=(app) data-environment=(environment) aria-label={"Deployments of " (app) " to " (environment)} {
                h2 { (inert_or_dash(Some(app))) " → " (inert_or_dash(Some(environment))) }
                ol.timeline-list {
                    @for d in list {
                        @let failed = d["status"].as_str() == Some("failed");
                        @let rework = d["kind"].as_str() == Some("rework");
                        li.deployment.failed[failed].rework[rework] {
                            (format::instant(&d["created_at"])) " · "
                            a href={"/ui/registries/" (segment(d["registry_id"].as_str().unwrap_or(""))) "/images/" (segment(d["image_id"].as_str().unwrap_or("")))} {
                                code { (inert_or_dash(d["image_name_with_tag"].as_str())) }
                            }
                            " "
                            @if failed { span.badge.failed { "failed" } } @else { span.badge.succeeded { "succeeded" } }
                            @if rework { " " span.badge.rework { "rework" } }
                            @if !d["rollback_of"].is_null() { " " span.note { "(rollback: the deployment it replaced is marked failed)" } }
                            @if let Some(mins) = d["duration_mins"].as_f64().filter(|m| *m >= 0.0) {
                                " · lead time " (format::minutes(mins))
                            }
                        }
                    }
                }
            }
        }
        h2 { "Failures" }
        div.table-wrap {
            table #failures {
                thead { tr { th scope="col" { "Failure" } th scope="col" { "Where" } th scope="col" { "Started" } th scope="col" { "Resolved" } th.num scope="col" { "Recovery" } } }
                tbody {
                    @for f in failures {
                        tr {
                            td { (inert_or_dash(f["title"].as_str().or(f["failure_id"].as_str()))) @if f["implicit"].as_bool() == Some(true) { " " span.note { "(opened by a failed deployment)" } } }
                            td { (inert_or_dash(f["app_id"].as_str())) " / " (inert_or_dash(f["environment"].as_str())) }
                            td { (format::instant(&f["started_at"])) }
                            td { @if f["resolved_at"].is_null() { span.failed { "open" } } @else { (format::instant(&f["resolved_at"])) } }
                            td.num { @match f["recovery_mins"].as_f64() { Some(m) => (format::minutes(m)), None => "—" } }
                        }
                    }
                }
            }
        }
    };
    Ok(Rendered {
        title: "Deployments".to_owned(),
        section: Section::Deployments,
        body,
    })
}
