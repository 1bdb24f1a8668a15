//! A mesh file's path inside the URL of a chunkstore socket route (`/files/PATH`, `/stat/PATH`).
//! Every client of that socket (the CLI, memrep's disk images, compute's inputs and results)
//! escapes paths the same way, so a name that works for one works for all.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Escapes all but unreserved characters within one path segment (`/` separates segments and
/// is kept between them).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `route` (`/files`, `/stat`) followed by the mesh path, its segments escaped. A leading `/`
/// on the path is optional.
pub fn route_uri(route: &str, path: &str) -> String {
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect();
    format!("{route}/{}", segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slashes_separate_and_everything_else_unsafe_is_escaped() {
        assert_eq!(route_uri("/files", "/vm/disk.raw"), "/files/vm/disk.raw");
        assert_eq!(route_uri("/stat", "a b/c?d#e%"), "/stat/a%20b/c%3Fd%23e%25");
        assert_eq!(route_uri("/files", "é~_-."), "/files/%C3%A9~_-.");
    }
}
