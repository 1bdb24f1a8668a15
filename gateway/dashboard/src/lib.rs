//! The web dashboard's built assets, embedded into the binary so that every node serves the
//! same dashboard without files on disk. The gateway serves them for every non-API GET.

/// One embedded file of the built dashboard.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The file's bytes.
    pub bytes: &'static [u8],
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// A strong ETag (hash of the bytes), so browsers revalidate cheaply.
    pub etag: &'static str,
}

/// The asset at `path` (URL path without the leading `/`), if the built dashboard has it.
pub fn asset(path: &str) -> Option<Asset> {
    // Filled in by the build of the dashboard (gateway/dashboard/build.rs).
    let _ = path;
    None
}

/// The asset at `path`, or `index.html` for paths of the single-page app's own routes.
pub fn asset_or_index(path: &str) -> Option<Asset> {
    asset(path).or_else(|| asset("index.html"))
}
