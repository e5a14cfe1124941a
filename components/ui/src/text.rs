//! Text that came from pipelines, shown inert.
//!
//! Committer names, commit messages, tags and app names are whatever a pipeline sent. maud
//! escapes every interpolation, so markup in them is text; what escaping does not stop is a
//! character that changes how the text *around* it is shown: a U+202E (right-to-left
//! override) in a committer's name would reverse the rest of the row, a zero-width space
//! would make two names look alike. Those are shown as a visible marker with their code point,
//! never passed to the browser, and every such text is isolated (`<bdi>`) so a right-to-left
//! name stays in its cell.

use maud::{Markup, html};

/// A character that changes how text is laid out without being seen: what the API refuses in
/// identifiers (`cd_core::is_invisible`: Unicode's format characters and the line and
/// paragraph separators), and control characters.
fn is_invisible(c: char) -> bool {
    c.is_control() || cd_core::is_invisible(c)
}

/// `text` escaped, isolated, with every invisible character shown as `⟨U+XXXX⟩`.
pub(crate) fn inert(text: &str) -> Markup {
    shown(text, is_invisible)
}

/// Free text of several lines (a commit message): as [`inert`], but line breaks and tabs
/// stay what they are (the element shows them with `white-space: pre-wrap`).
pub(crate) fn inert_lines(text: &str) -> Markup {
    shown(text, |c| {
        !matches!(c, '\n' | '\r' | '\t') && is_invisible(c)
    })
}

fn shown(text: &str, is_invisible: impl Fn(char) -> bool) -> Markup {
    if !text.chars().any(&is_invisible) {
        return html! { bdi { (text) } };
    }
    let mut parts: Vec<Result<String, char>> = Vec::new();
    for c in text.chars() {
        match (is_invisible(c), parts.last_mut()) {
            (true, _) => parts.push(Err(c)),
            (false, Some(Ok(run))) => run.push(c),
            (false, _) => parts.push(Ok(c.to_string())),
        }
    }
    html! {
        bdi {
            @for part in &parts {
                @match part {
                    Ok(run) => (run),
                    Err(c) => {
                        @let code = format!("U+{:04X}", *c as u32);
                        span.invisible-char title=(code) { "⟨" (code) "⟩" }
                    }
                }
            }
        }
    }
}

/// An optional text, inert, or a dash.
pub(crate) fn inert_or_dash(text: Option<&str>) -> Markup {
    match text {
        Some(text) if !text.is_empty() => inert(text),
        _ => html! { "—" },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_text() {
        assert_eq!(
            inert("<script>alert(1)</script>").into_string(),
            "<bdi>&lt;script&gt;alert(1)&lt;/script&gt;</bdi>"
        );
    }

    #[test]
    fn a_bidi_override_is_shown_not_applied() {
        let shown = inert("eve\u{202E}gnp.exe").into_string();
        assert!(!shown.contains('\u{202E}'), "{shown}");
        assert_eq!(
            shown,
            "<bdi>eve<span class=\"invisible-char\" title=\"U+202E\">⟨U+202E⟩</span>gnp.exe</bdi>"
        );
    }

    #[test]
    fn zero_width_and_control_characters_are_shown() {
        let shown = inert("a\u{200B}b\u{0007}").into_string();
        assert!(
            shown.contains("U+200B") && shown.contains("U+0007"),
            "{shown}"
        );
        assert!(!shown.contains('\u{200B}') && !shown.contains('\u{0007}'));
    }

    #[test]
    fn a_commit_message_keeps_its_lines_but_not_its_overrides() {
        let shown = inert_lines("fix: x\n\nbody\u{202E}").into_string();
        assert_eq!(
            shown,
            "<bdi>fix: x\n\nbody<span class=\"invisible-char\" title=\"U+202E\">⟨U+202E⟩</span></bdi>"
        );
    }

    #[test]
    fn right_to_left_letters_are_kept_and_isolated() {
        // Hebrew is text, not a control: shown as written, inside its own isolate.
        assert_eq!(inert("שלום").into_string(), "<bdi>שלום</bdi>");
    }
}
