//! A page under construction. Text from the store (names, versions, licences, manifests) is
//! written by builds and caches spy does not trust, so markup can only come from string literals
//! (`raw` takes `&'static str`) and everything else goes through `text`, which escapes it.

pub struct Html(String);

const STYLE: &str = "\
body{margin:0;font:14px/1.45 system-ui,sans-serif;color:#1b1f24;background:#fff}\
header{background:#23395d;color:#fff;padding:10px 20px}\
header a{color:#fff;font-weight:bold;text-decoration:none;margin-right:16px}\
header span{color:#c9d4e5}\
main{padding:4px 20px 20px}\
h1{font-size:20px;margin:14px 0 6px}h2{font-size:16px;margin:18px 0 6px}\
table{border-collapse:collapse}\
th,td{text-align:left;padding:3px 10px;border-bottom:1px solid #dde3ec;vertical-align:top}\
th{background:#e8edf5}tr:nth-child(even) td{background:#f6f8fb}\
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}\
code,pre{font-family:ui-monospace,monospace;font-size:12px}\
pre{background:#f6f8fa;padding:10px;overflow:auto;max-height:40em;border:1px solid #dde3ec}\
a{color:#1d4f91}.muted{color:#6a7380}\
.graph{overflow:auto;border:1px solid #dde3ec;padding:6px}";

impl Html {
    /// A page titled `title` (escaped), with the common header.
    pub fn page(title: &str, store_root: &str) -> Html {
        let mut h = Html(String::with_capacity(16 * 1024));
        h.raw("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
        h.text(title);
        h.raw(" · spy</title><style>");
        h.raw(STYLE);
        h.raw("</style></head><body><header><a href=\"/\">spy store</a><span>");
        h.text(store_root);
        h.raw("</span></header><main>");
        h
    }

    /// Closes the page; the footer points clients at the cache's info document.
    pub fn finish(mut self) -> String {
        self.raw("<p class=\"muted\">Binary cache clients: <a href=\"/spy-cache.json\">/spy-cache.json</a></p></main></body></html>\n");
        self.0
    }

    pub fn raw(&mut self, markup: &'static str) -> &mut Html {
        self.0.push_str(markup);
        self
    }

    pub fn text(&mut self, s: &str) -> &mut Html {
        escape_into(&mut self.0, s);
        self
    }

    /// `<a href="HREF">TEXT</a>`, both escaped.
    pub fn link(&mut self, href: &str, text: &str) -> &mut Html {
        self.raw("<a href=\"").text(href).raw("\">").text(text).raw("</a>")
    }

    /// A table cell holding `s`.
    pub fn cell(&mut self, s: &str) -> &mut Html {
        self.raw("<td>").text(s).raw("</td>")
    }

    pub fn num_cell(&mut self, s: &str) -> &mut Html {
        self.raw("<td class=\"num\">").text(s).raw("</td>")
    }

    /// Appends an SVG document made by [`crate::svg`] (whose text is escaped as it is made).
    pub fn svg(&mut self, svg: &crate::svg::Svg) -> &mut Html {
        self.0.push_str(svg.as_str());
        self
    }
}

/// Escapes for text and for double- or single-quoted attribute values. Control characters other
/// than tab and newline become U+FFFD: a log or manifest must not smuggle anything into a page.
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}
