//! Untrusted text — reader names, comments, reasons, case IDs, file names, DICOM attributes — made safe
//! for where Sacro writes it: one function for each destination, used everywhere that destination is
//! written (HTML, Markdown, CSV cells, the terminal), and the one rule for what text input may contain.
//! Pure: no I/O.

use std::borrow::Cow;

/// `s` as HTML text (element content or a quoted attribute value).
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `s` as literal Markdown text: every ASCII punctuation character that Markdown (CommonMark, tables)
/// could read as syntax — emphasis, links, images, raw HTML, table cells, headings — backslash-escaped,
/// and line breaks as spaces (a name cannot end a table row).
pub fn markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '+' | '-' | '.'
            | '!' | '|' | '<' | '>' | '&' | '~' | '"' | '\'' | ':' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// A CSV cell that a spreadsheet will not run as a formula (OWASP's advice): text starting with `=`,
/// `+`, `-`, `@`, a tab or a carriage return gets a leading apostrophe. Numbers (`-0.5`, `+3`) are left
/// as they are: a spreadsheet reads them as numbers, not formulas.
pub fn csv_cell(s: &str) -> Cow<'_, str> {
    let risky = s
        .chars()
        .next()
        .is_some_and(|c| matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r'));
    if risky && s.trim().parse::<f64>().map_or(true, |v| !v.is_finite()) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Whether `c` would change how a terminal or a bidirectional display shows what follows: C0 and C1
/// control characters, DEL, and Unicode's bidirectional embeddings, overrides and isolates.
pub fn is_disruptive_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}')
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// `s` for printing on a terminal: disruptive characters ([`is_disruptive_char`], e.g. an escape sequence in a
/// DICOM attribute) written as `\u{…}`, so nothing in a file can move the cursor, recolour or retitle
/// the terminal, or reorder what is shown. Line feeds and tabs stay (they only lay out text).
pub fn terminal(s: &str) -> Cow<'_, str> {
    let shown = |c: char| is_disruptive_char(c) && c != '\n' && c != '\t';
    if !s.chars().any(shown) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if shown(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The first character that text typed by a user may not contain, if any: disruptive characters
/// ([`is_disruptive_char`]), except line breaks and tabs where `multiline` (a comment).
pub fn refused_char(s: &str, multiline: bool) -> Option<char> {
    s.chars()
        .find(|&c| is_disruptive_char(c) && !(multiline && matches!(c, '\n' | '\t' | '\r')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_markup_and_quotes() {
        assert_eq!(
            html("<img src=x onerror=alert(1)> & \"q\" 'a'"),
            "&lt;img src=x onerror=alert(1)&gt; &amp; &quot;q&quot; &#39;a&#39;"
        );
        assert_eq!(html("Dr Ünal"), "Dr Ünal");
    }

    #[test]
    fn markdown_text_renders_as_the_same_text() {
        for s in [
            "<script>alert(1)</script>",
            "[click](javascript:alert(1))",
            "**bold** | cell",
            "a\\b",
            "# heading",
        ] {
            let md = format!("| {} |\n|---|\n", markdown(s));
            let mut html_out = String::new();
            pulldown_cmark::html::push_html(
                &mut html_out,
                pulldown_cmark::Parser::new_ext(&md, pulldown_cmark::Options::ENABLE_TABLES),
            );
            // One cell, holding the text: no element, link, emphasis or heading made of it.
            assert_eq!(html_out.matches("<th>").count(), 1, "{s}: {html_out}");
            for made in ["<script", "href", "<strong>", "<em>", "<h1>", "<img"] {
                assert!(!html_out.contains(made), "{s}: {html_out}");
            }
            let text = html_out
                .split("<th>")
                .nth(1)
                .and_then(|c| c.split("</th>").next())
                .unwrap_or_default()
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
                .replace("&quot;", "\"");
            assert_eq!(text, s, "{html_out}");
            assert!(
                !html_out.contains("<script") && !html_out.contains("href"),
                "{html_out}"
            );
        }
    }

    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_get_a_quote() {
        for s in [
            "=1+1",
            "+cmd",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "=HYPERLINK(\"x\")",
        ] {
            assert_eq!(csv_cell(s), format!("'{s}"), "{s:?}");
        }
        for s in ["-0.5", "+3", "1e-3", "Dr One", "", "C0001", "a=b"] {
            assert_eq!(csv_cell(s), s, "{s:?}");
        }
        assert_eq!(csv_cell("-inf"), "'-inf");
    }

    #[test]
    fn terminal_text_shows_control_characters_instead_of_running_them() {
        assert_eq!(terminal("PELVIS"), "PELVIS");
        assert_eq!(terminal("\u{1b}]0;owned\u{7}x"), "\\u{1b}]0;owned\\u{7}x");
        assert_eq!(terminal("a\u{202E}b"), "a\\u{202e}b");
        assert_eq!(terminal("two\nlines\tand a tab"), "two\nlines\tand a tab");
        assert_eq!(terminal("over\rwrite"), "over\\u{d}write");
        assert_eq!(refused_char("Dr\u{202E}One", false), Some('\u{202E}'));
        assert_eq!(refused_char("line\nline", true), None);
        assert_eq!(refused_char("line\nline", false), Some('\n'));
        assert_eq!(refused_char("ok", false), None);
    }
}
