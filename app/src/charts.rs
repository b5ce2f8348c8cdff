//! Hand-drawn charts. Line charts and histograms are SVG built as strings (numbers and our own
//! labels only; anything from the user goes through [`esc`]); the attention heatmap is a canvas.

use std::fmt::Write;

/// Escapes text for SVG/HTML, so nothing a URL or an upload contains can become markup.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub points: &'a [(f64, f64)],
    pub dashed: bool,
}

fn nice_num(v: f64) -> String {
    tick(v, v.abs())
}

/// Formats `v` with enough digits to tell apart ticks `step` apart: 0.0012 and 0.0014, not
/// 0.00 twice. Integers stay integers.
fn tick(v: f64, step: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.1e}");
    }
    if (v - v.round()).abs() < 1e-9 && step >= 1.0 {
        return format!("{v:.0}");
    }
    let step = if step > 0.0 { step } else { a };
    let decimals = (-(step.log10().floor()) + 1.0).clamp(0.0, 6.0) as usize;
    format!("{v:.decimals$}")
}

/// A line chart; `log_y` plots log10 of positive values (non-positive points are skipped).
pub fn line_chart(title: &str, x_label: &str, series: &[Series], log_y: bool) -> String {
    let (w, h) = (360.0, 200.0);
    let (l, r, t, b) = (46.0, 10.0, 22.0, 28.0);
    let tf = |y: f64| if log_y { y.log10() } else { y };
    let pts = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log_y || *y > 0.0));
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(tf(y));
        y1 = y1.max(tf(y));
    }
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg viewBox="0 0 {w} {h}" class="chart" role="img" aria-label="{}"><text x="{l}" y="14" class="ct">{}</text>"#,
        esc(title),
        esc(title)
    );
    if x0 > x1 {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" class="empty" text-anchor="middle">no data yet</text></svg>"#,
            w / 2.0,
            h / 2.0
        );
        return svg;
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 < 1e-12 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let pad = (y1 - y0) * 0.05;
    let (y0, y1) = (y0 - pad, y1 + pad);
    let sx = |x: f64| l + (x - x0) / (x1 - x0) * (w - l - r);
    let sy = |y: f64| t + (1.0 - (tf(y) - y0) / (y1 - y0)) * (h - t - b);
    let _ = write!(
        svg,
        r#"<rect x="{l}" y="{t}" width="{}" height="{}" class="plot"/>"#,
        w - l - r,
        h - t - b
    );
    for i in 0..=4 {
        let v = y0 + (y1 - y0) * i as f64 / 4.0;
        let y = t + (1.0 - i as f64 / 4.0) * (h - t - b);
        let label = if log_y {
            let real = 10f64.powf(v);
            let step = real - 10f64.powf(v - (y1 - y0) / 4.0);
            tick(real, step)
        } else {
            tick(v, (y1 - y0) / 4.0)
        };
        let _ = write!(
            svg,
            r#"<line x1="{l}" x2="{}" y1="{y:.1}" y2="{y:.1}" class="grid"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{label}</text>"#,
            w - r,
            l - 4.0,
            y + 3.0
        );
    }
    // Steps are whole numbers: ticks sit on integers, about four of them, never 1, 1, 2.
    let xstep = ((x1 - x0) / 4.0).ceil().max(1.0);
    let mut v = x0.ceil();
    while v <= x1 + 1e-9 {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
            sx(v),
            h - b + 12.0,
            tick(v, xstep)
        );
        v += xstep;
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" class="tick" text-anchor="end">{}</text>"#,
        w - r,
        h - 3.0,
        esc(x_label)
    );
    for s in series {
        let mut d = String::new();
        let mut pen = false;
        for &(x, y) in s.points {
            if !(x.is_finite() && y.is_finite()) || (log_y && y <= 0.0) {
                pen = false;
                continue;
            }
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if pen { "L" } else { "M" },
                sx(x),
                sy(y)
            );
            pen = true;
        }
        let dash = if s.dashed {
            r#" stroke-dasharray="4 3""#
        } else {
            ""
        };
        let _ = write!(
            svg,
            r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.6"{dash}><title>{}</title></path>"#,
            esc(s.color),
            esc(s.name)
        );
        if s.points.len() == 1 {
            let (x, y) = s.points[0];
            if x.is_finite() && y.is_finite() && (!log_y || y > 0.0) {
                let _ = write!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"/>"#,
                    sx(x),
                    sy(y),
                    esc(s.color)
                );
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A histogram with log-scaled counts: outliers are a handful of values far out, invisible on a
/// linear axis.
pub fn histogram(title: &str, range: f64, counts: &[u64], color: &str) -> String {
    let (w, h) = (360.0, 170.0);
    let (l, r, t, b) = (36.0, 10.0, 22.0, 26.0);
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let lmax = (max + 1.0).log10();
    let n = counts.len().max(1) as f64;
    let bw = (w - l - r) / n;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg viewBox="0 0 {w} {h}" class="chart" role="img" aria-label="{}"><text x="{l}" y="14" class="ct">{}</text><rect x="{l}" y="{t}" width="{}" height="{}" class="plot"/>"#,
        esc(title),
        esc(title),
        w - l - r,
        h - t - b
    );
    for (i, &c) in counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let frac = (c as f64 + 1.0).log10() / lmax;
        let bh = frac * (h - t - b);
        let _ = write!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{c}</title></rect>"#,
            l + i as f64 * bw + 0.5,
            h - b - bh,
            (bw - 1.0).max(0.5),
            bh,
            esc(color)
        );
    }
    for (x, label) in [
        (l, format!("−{}", nice_num(range))),
        ((l + w - r) / 2.0, "0".to_string()),
        (w - r, nice_num(range)),
    ] {
        let _ = write!(
            svg,
            r#"<text x="{x:.1}" y="{}" class="tick" text-anchor="middle">{label}</text>"#,
            h - b + 12.0
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" class="tick" text-anchor="end">count (log)</text></svg>"#,
        l - 4.0,
        t + 8.0
    );
    svg
}

/// Grouped bars (one group per label, one bar per series), for SQNR per tensor.
pub fn bars(title: &str, labels: &[String], series: &[(&str, &str, Vec<f64>)]) -> String {
    let (w, h) = (720.0, 220.0);
    let (l, r, t, b) = (40.0, 10.0, 22.0, 70.0);
    let max = series
        .iter()
        .flat_map(|s| s.2.iter())
        .copied()
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::max);
    let groups = labels.len().max(1) as f64;
    let gw = (w - l - r) / groups;
    let bw = (gw - 2.0) / series.len().max(1) as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg viewBox="0 0 {w} {h}" class="chart wide" role="img" aria-label="{}"><text x="{l}" y="14" class="ct">{}</text><rect x="{l}" y="{t}" width="{}" height="{}" class="plot"/>"#,
        esc(title),
        esc(title),
        w - l - r,
        h - t - b
    );
    for i in 0..=4 {
        let v = max * i as f64 / 4.0;
        let y = h - b - (h - t - b) * i as f64 / 4.0;
        let _ = write!(
            svg,
            r#"<line x1="{l}" x2="{}" y1="{y:.1}" y2="{y:.1}" class="grid"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
            w - r,
            l - 4.0,
            y + 3.0,
            nice_num(v)
        );
    }
    for (g, label) in labels.iter().enumerate() {
        for (k, (name, color, vals)) in series.iter().enumerate() {
            let v = vals.get(g).copied().unwrap_or(f64::NAN);
            if !v.is_finite() {
                continue;
            }
            let bh = (v.max(0.0) / max) * (h - t - b);
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {}: {:.1} dB</title></rect>"#,
                l + g as f64 * gw + 1.0 + k as f64 * bw,
                h - b - bh,
                bw.max(0.5),
                bh,
                esc(color),
                esc(name),
                esc(label),
                v
            );
        }
        let x = l + (g as f64 + 0.5) * gw;
        let _ = write!(
            svg,
            r#"<text transform="translate({x:.1},{}) rotate(-60)" class="tick" text-anchor="end">{}</text>"#,
            h - b + 6.0,
            esc(label)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Draws one head's attention map into `ctx` at (`x`, `y`), `size` pixels square.
/// Values are probabilities in [0, 1]; darker is more attention.
pub fn draw_heatmap(
    ctx: &web_sys::CanvasRenderingContext2d,
    probs: &[f32],
    seq: usize,
    x: f64,
    y: f64,
    size: f64,
    dark: bool,
) {
    let cell = size / seq.max(1) as f64;
    for q in 0..seq {
        for k in 0..seq {
            let p = probs
                .get(q * seq + k)
                .copied()
                .unwrap_or(0.0)
                .clamp(0.0, 1.0) as f64;
            // sqrt: most rows are spread thin; the square root keeps weak patterns visible.
            let v = p.sqrt();
            let (r, g, b) = if dark {
                (
                    (20.0 + 200.0 * v) as u8,
                    (24.0 + 120.0 * v) as u8,
                    (32.0 + 40.0 * v) as u8,
                )
            } else {
                (
                    (255.0 - 180.0 * v) as u8,
                    (255.0 - 200.0 * v) as u8,
                    (255.0 - 90.0 * v) as u8,
                )
            };
            ctx.set_fill_style_str(&format!("rgb({r},{g},{b})"));
            ctx.fill_rect(
                x + k as f64 * cell,
                y + q as f64 * cell,
                cell + 0.5,
                cell + 0.5,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<img src=x onerror='a'>&"),
            "&lt;img src=x onerror=&#39;a&#39;&gt;&amp;"
        );
    }

    #[test]
    fn line_chart_survives_nan_and_single_points() {
        let pts = [(0.0, f64::NAN), (1.0, 2.0)];
        let s = line_chart(
            "t<",
            "step",
            &[Series {
                name: "a",
                color: "#000",
                points: &pts,
                dashed: false,
            }],
            true,
        );
        assert!(s.contains("<circle") || s.contains("M"));
        assert!(!s.contains("NaN"));
        assert!(s.contains("t&lt;"));
    }
}
