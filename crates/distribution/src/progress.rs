//! Progress events of pulls and pushes. The daemon turns them into Docker's JSON progress
//! messages; a CLI can draw bars. `id` is the 12-hex short digest Docker shows.

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The reference resolved to this manifest (or index) digest.
    Resolved {
        reference: String,
        digest: String,
    },
    Waiting {
        id: String,
    },
    AlreadyExists {
        id: String,
    },
    Downloading {
        id: String,
        current: u64,
        total: u64,
    },
    /// A dropped connection is resumed from `offset`.
    Retrying {
        id: String,
        attempt: u32,
        offset: u64,
    },
    /// Downloaded, verified and extracted.
    PullComplete {
        id: String,
    },
    Preparing {
        id: String,
    },
    Pushing {
        id: String,
        current: u64,
        total: u64,
    },
    Mounted {
        id: String,
        from: String,
    },
    Pushed {
        id: String,
    },
    /// A foreign / non-distributable layer, left out of the push as Docker does.
    SkippedForeign {
        id: String,
    },
    Done {
        digest: String,
    },
}

pub type ProgressFn<'a> = &'a (dyn Fn(Progress) + Send + Sync);

pub fn short_id(digest: &berth_image::Digest) -> String {
    digest.hex().chars().take(12).collect()
}
