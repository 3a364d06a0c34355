//! This process's mount table, from /proc/self/mountinfo.

use std::path::PathBuf;

pub struct Mount {
    pub mountpoint: PathBuf,
    pub fstype: String,
    pub superopts: String,
}

/// Every mount visible to us; empty if the table cannot be read.
pub fn read() -> Vec<Mount> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|line| {
            // Optional fields end at " - ", then fstype, source, superopts.
            let (pre, post) = line.split_once(" - ")?;
            let mut post = post.split(' ');
            let fstype = post.next()?.to_string();
            let _source = post.next();
            Some(Mount {
                mountpoint: PathBuf::from(pre.split(' ').nth(4)?),
                fstype,
                superopts: post.next().unwrap_or("").to_string(),
            })
        })
        .collect()
}
