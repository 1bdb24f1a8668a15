//! The web dashboard's built assets, embedded into the binary so that every node serves the
//! same dashboard without files on disk. The gateway serves them for every non-API GET.
//!
//! `build.rs` installs the locked npm packages, bundles `web/` with esbuild and generates the
//! table of files included here.

/// One embedded file of the built dashboard.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The file's bytes.
    pub bytes: &'static [u8],
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// A strong ETag (quoted BLAKE3 of the bytes), so browsers revalidate cheaply.
    pub etag: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The asset at `path` (URL path without the leading `/`), if the built dashboard has it.
pub fn asset(path: &str) -> Option<Asset> {
    lookup(path)
}

/// The asset at `path`, or `index.html` for the single-page app's own routes: `""` and any
/// path whose last segment has no file extension (`files`, `nodes/abc`). A missing file
/// (`nope.js`) stays `None`, so the gateway answers 404 rather than HTML for a script.
pub fn asset_or_index(path: &str) -> Option<Asset> {
    if let Some(a) = asset(path) {
        return Some(a);
    }
    let last = path.rsplit('/').next().unwrap_or("");
    if last.contains('.') {
        None
    } else {
        asset("index.html")
    }
}

/// Where the build installed the dashboard's npm packages (esbuild, playwright-core, ...):
/// the browser tests run Playwright from there, never from a download at test time.
pub fn node_modules_dir() -> &'static str {
    env!("HYPHAE_DASHBOARD_NODE_MODULES")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_dashboard_is_embedded_with_types_and_etags() {
        let index = asset("index.html").expect("index.html");
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        let html = std::str::from_utf8(index.bytes).expect("utf-8");
        assert!(
            html.contains("/app.js") && html.contains("/app.css"),
            "{html}"
        );
        let js = asset("app.js").expect("app.js");
        assert!(js.content_type.starts_with("text/javascript"));
        assert!(js.bytes.len() > 1000);
        assert!(asset("app.css").is_some());
        // Strong ETags: quoted, not weak, different for different bytes.
        assert!(index.etag.starts_with('"') && index.etag.ends_with('"'));
        assert_ne!(index.etag, js.etag);
        assert_eq!(
            index.etag,
            format!("\"{}\"", &blake3::hash(index.bytes).to_hex()[..32])
        );
    }

    #[test]
    fn app_routes_fall_back_to_index_but_missing_files_do_not() {
        let index = asset("index.html").expect("index.html").etag;
        assert_eq!(asset_or_index("").map(|a| a.etag), Some(index));
        assert_eq!(asset_or_index("files").map(|a| a.etag), Some(index));
        assert_eq!(asset_or_index("nodes/abc").map(|a| a.etag), Some(index));
        assert!(asset_or_index("missing.js").is_none());
        assert!(asset("files").is_none());
        assert!(PATHS.contains(&"app.js"));
    }
}
