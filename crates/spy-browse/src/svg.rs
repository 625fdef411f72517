//! An entry's dependency graph as SVG: the entry on top, each input one layer below the lowest of
//! the entries that use it (longest-path layering), each layer ordered by where its users sit so
//! that edges cross less. Boxes link to the entries' pages.

use std::collections::{BTreeMap, HashMap};

use crate::html::escape;

pub struct Svg(String);

impl Svg {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

/// One box of the graph.
pub struct GraphNode {
    /// Unique key (the store name); also the box's hover title.
    pub key: String,
    pub href: String,
    pub label: String,
    pub detail: String,
    /// Inputs, as keys of other nodes (keys with no node are drawn as missing).
    pub inputs: Vec<String>,
}

const BOX_W: f64 = 210.0;
const BOX_H: f64 = 42.0;
const GAP_X: f64 = 22.0;
const GAP_Y: f64 = 58.0;
const MARGIN: f64 = 12.0;
/// Characters that fit on a line of a box.
const FIT: usize = 28;

/// Lays out `nodes` (the first is the root) and draws them.
pub fn dependency_graph(nodes: &[GraphNode]) -> Svg {
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.key.as_str(), i)).collect();
    let inputs: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| n.inputs.iter().filter_map(|k| index.get(k.as_str()).copied()).collect())
        .collect();
    let layer = layers(&inputs);
    let depth = layer.iter().copied().max().map_or(0, |d| d + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); depth];
    // Place layer by layer: a node goes where the mean of its users' positions is.
    let mut pos = vec![0.0f64; nodes.len()];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (u, ins) in inputs.iter().enumerate() {
        for &v in ins {
            users[v].push(u);
        }
    }
    for (i, &l) in layer.iter().enumerate() {
        rows[l].push(i);
    }
    for row in rows.iter_mut() {
        let mut keyed: Vec<(f64, &str, usize)> = row
            .iter()
            .map(|&i| {
                let placed: Vec<f64> = users[i].iter().filter(|&&u| layer[u] < layer[i]).map(|&u| pos[u]).collect();
                let bary = if placed.is_empty() {
                    0.0
                } else {
                    placed.iter().sum::<f64>() / placed.len() as f64
                };
                (bary, nodes[i].label.as_str(), i)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
        *row = keyed.iter().map(|k| k.2).collect();
        let n = row.len() as f64;
        for (k, &i) in row.iter().enumerate() {
            // Centred positions in [-n/2, n/2], so rows of different widths line up.
            pos[i] = k as f64 - (n - 1.0) / 2.0;
        }
    }
    let widest = rows.iter().map(Vec::len).max().unwrap_or(1) as f64;
    let width = widest * (BOX_W + GAP_X) - GAP_X + 2.0 * MARGIN;
    let height = depth as f64 * (BOX_H + GAP_Y) - GAP_Y + 2.0 * MARGIN;
    let centre = |i: usize| -> (f64, f64) {
        let x = width / 2.0 + pos[i] * (BOX_W + GAP_X);
        let y = MARGIN + layer[i] as f64 * (BOX_H + GAP_Y);
        (x, y)
    };

    let mut s = String::with_capacity(4096 + nodes.len() * 600);
    s.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"system-ui,sans-serif\">\
<defs><marker id=\"arrow\" viewBox=\"0 0 8 8\" refX=\"8\" refY=\"4\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0L8,4L0,8z\" fill=\"#8a97ab\"/></marker></defs>\n"
    ));
    let mut edges: BTreeMap<(usize, usize), ()> = BTreeMap::new();
    for (u, ins) in inputs.iter().enumerate() {
        for &v in ins {
            edges.insert((u, v), ());
        }
    }
    for &(u, v) in edges.keys() {
        let ((x1, y1), (x2, y2)) = (centre(u), centre(v));
        let (y1, y2) = (y1 + BOX_H, y2);
        let bend = (y2 - y1) / 2.0;
        s.push_str(&format!(
            "<path d=\"M{x1:.1},{y1:.1}C{x1:.1},{:.1} {x2:.1},{:.1} {x2:.1},{y2:.1}\" fill=\"none\" stroke=\"#8a97ab\" stroke-width=\"1.2\" marker-end=\"url(#arrow)\"/>\n",
            y1 + bend,
            y2 - bend
        ));
    }
    for (i, n) in nodes.iter().enumerate() {
        let (cx, y) = centre(i);
        let x = cx - BOX_W / 2.0;
        let (fill, stroke) = if i == 0 { ("#ffe9a8", "#b08900") } else { ("#dbeafe", "#3b6db3") };
        s.push_str(&format!("<a href=\"{}\"><title>{}</title>", escape(&n.href), escape(&n.key)));
        s.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"5\" fill=\"{fill}\" stroke=\"{stroke}\"/>"
        ));
        s.push_str(&format!(
            "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\" fill=\"#1b1f24\">{}</text>",
            y + 17.0,
            escape(&fit(&n.label))
        ));
        s.push_str(&format!(
            "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#4a5361\">{}</text></a>\n",
            y + 33.0,
            escape(&fit(&n.detail))
        ));
    }
    // Inputs that are not in the store are listed by the page; the graph shows what is there.
    s.push_str("</svg>\n");
    Svg(s)
}

/// Each node's layer: 0 for the root (node 0), otherwise one more than the deepest of its users,
/// so every edge points downwards.
fn layers(inputs: &[Vec<usize>]) -> Vec<usize> {
    // Users before inputs: reverse post-order of a depth-first walk from the root.
    let mut order = Vec::with_capacity(inputs.len());
    let mut seen = vec![false; inputs.len()];
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for start in 0..inputs.len() {
        if seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push((start, 0));
        while let Some((n, next)) = stack.pop() {
            if let Some(&d) = inputs[n].get(next) {
                stack.push((n, next + 1));
                if !seen[d] {
                    seen[d] = true;
                    stack.push((d, 0));
                }
            } else {
                order.push(n);
            }
        }
    }
    order.reverse();
    let mut layer = vec![0usize; inputs.len()];
    for &u in &order {
        for &v in &inputs[u] {
            // A cycle (only in forged metadata) must not grow layers without bound.
            if layer[v] <= layer[u] && layer[u] < inputs.len() {
                layer[v] = layer[u] + 1;
            }
        }
    }
    layer
}

fn fit(s: &str) -> String {
    if s.chars().count() <= FIT {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(FIT - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(key: &str, inputs: &[&str]) -> GraphNode {
        GraphNode {
            key: key.into(),
            href: format!("/entry/{key}"),
            label: key.into(),
            detail: "1.0".into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn every_edge_points_down_and_a_shared_input_sits_below_its_deepest_user() {
        // app -> lib -> libc, app -> libc, app -> missing
        let inputs = vec![vec![1, 2], vec![2], vec![]];
        assert_eq!(layers(&inputs), [0, 1, 2]);
        let nodes = [node("app", &["lib", "libc", "missing"]), node("lib", &["libc"]), node("libc", &[])];
        let svg = dependency_graph(&nodes).into_string();
        assert_eq!(svg.matches("<rect").count(), 3);
        assert_eq!(svg.matches("marker-end").count(), 3, "the missing input draws no edge");
        assert!(svg.contains("href=\"/entry/libc\""));
    }

    #[test]
    fn forged_cycles_terminate_and_labels_are_escaped() {
        let nodes = [node("a<script>", &["b"]), node("b", &["a<script>"])];
        let svg = dependency_graph(&nodes).into_string();
        assert!(!svg.contains("<script>") && svg.contains("a&lt;script&gt;"));
    }

    #[test]
    fn long_labels_are_cut_to_fit_their_box() {
        assert_eq!(fit("short"), "short");
        let cut = fit(&"x".repeat(60));
        assert_eq!(cut.chars().count(), FIT);
        assert!(cut.ends_with('…'));
    }
}
