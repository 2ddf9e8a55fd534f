//! inotify watches for `--reload`'s `inotify` engine: the kernel queues an
//! event when a file in a watched directory is written, replaced, created,
//! removed or touched, and [`FileWatch::changed`] reads the queue without
//! waiting. Directories are watched rather than files, since editors save
//! by writing a new file and renaming it over the old one (a watch on the
//! old file would see nothing more).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

/// What changes a file: written and closed, renamed over, created, removed,
/// or its times touched (`touch`, as the poll engine notices too).
const CHANGES: AddWatchFlags = AddWatchFlags::IN_CLOSE_WRITE
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_CREATE)
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_ATTRIB);

/// Files watched through their directories.
#[derive(Debug)]
pub struct FileWatch {
    inotify: Inotify,
    /// Each watched directory, as the first file named it.
    dirs: HashMap<PathBuf, WatchDescriptor>,
    /// A file's watch and name in its directory → the file as named (two
    /// spellings of one directory share a watch: the kernel says which).
    files: HashMap<(WatchDescriptor, OsString), String>,
}

impl FileWatch {
    /// A watch with no files yet; fails when the kernel gives no inotify
    /// instance (`fs.inotify.max_user_instances` reached).
    pub fn new() -> nix::Result<FileWatch> {
        Ok(FileWatch {
            inotify: Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?,
            dirs: HashMap::new(),
            files: HashMap::new(),
        })
    }

    /// Watches `file` from now on. A file whose directory is gone is
    /// skipped (as the poll engine skips one it cannot stat); `ENOSPC`
    /// (`fs.inotify.max_user_watches` reached) and other errors are
    /// returned.
    pub fn add(&mut self, file: &str) -> nix::Result<()> {
        let path = Path::new(file);
        let Some(name) = path.file_name() else {
            return Ok(());
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let wd = match self.dirs.get(dir) {
            Some(wd) => *wd,
            None => match self.inotify.add_watch(dir, CHANGES) {
                Ok(wd) => {
                    self.dirs.insert(dir.to_owned(), wd);
                    wd
                }
                Err(Errno::ENOENT | Errno::ENOTDIR | Errno::EACCES) => return Ok(()),
                Err(e) => return Err(e),
            },
        };
        self.files
            .entry((wd, name.to_owned()))
            .or_insert_with(|| file.to_owned());
        Ok(())
    }

    /// The first watched file with an event queued since the last call, if
    /// any; events for other files in the same directories are dropped.
    pub fn changed(&mut self) -> Option<String> {
        let mut found = None;
        // Drained whole, so old events do not name a file next time.
        loop {
            let events = match self.inotify.read_events() {
                Ok(events) => events,
                Err(Errno::EAGAIN) => break,
                Err(e) => {
                    warning!("reloader: reading inotify events: {e}");
                    break;
                }
            };
            for event in events {
                if found.is_some() {
                    continue;
                }
                if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    found = Some("a watched directory (too many changes to name one)".into());
                } else if let Some(name) = event.name {
                    found = self.files.get(&(event.wd, name)).cloned();
                }
            }
        }
        found
    }

    /// How many files are watched.
    pub fn watched(&self) -> usize {
        self.files.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ferrocorn-watch-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_write_a_rename_over_and_a_touch_are_changes_of_that_file() {
        let d = dir("changes");
        let app = d.join("app.py");
        let other = d.join("notes.txt");
        std::fs::write(&app, "v1").unwrap();
        std::fs::write(&other, "x").unwrap();
        let name = app.to_str().unwrap().to_owned();
        let mut watch = FileWatch::new().unwrap();
        watch.add(&name).unwrap();
        watch.add(&name).unwrap();
        assert_eq!(watch.watched(), 1);
        assert_eq!(watch.changed(), None);

        // Another file of the directory is no change.
        std::fs::write(&other, "y").unwrap();
        assert_eq!(watch.changed(), None);

        std::fs::write(&app, "v2").unwrap();
        assert_eq!(watch.changed(), Some(name.clone()));
        assert_eq!(watch.changed(), None, "events are taken once");

        // An editor's save: a new file renamed over the old one.
        let tmp = d.join(".app.py.swp");
        std::fs::write(&tmp, "v3").unwrap();
        std::fs::rename(&tmp, &app).unwrap();
        assert_eq!(watch.changed(), Some(name.clone()));

        let now = std::time::SystemTime::now();
        std::fs::File::options()
            .write(true)
            .open(&app)
            .unwrap()
            .set_modified(now)
            .unwrap();
        assert_eq!(watch.changed(), Some(name.clone()));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_missing_directory_is_skipped_and_a_relative_name_kept_as_given() {
        let mut watch = FileWatch::new().unwrap();
        watch.add("/nonexistent-ferrocorn-dir/app.py").unwrap();
        assert_eq!(watch.watched(), 0);
        let d = dir("spellings");
        let app = d.join("m.py");
        std::fs::write(&app, "1").unwrap();
        // Two spellings of one directory (through a symlink) share its
        // watch: the first name is the one reported.
        let link = d.with_extension("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&d, &link).unwrap();
        watch.add(app.to_str().unwrap()).unwrap();
        watch.add(link.join("m.py").to_str().unwrap()).unwrap();
        assert_eq!(watch.dirs.len(), 2);
        assert_eq!(watch.watched(), 1, "one watch, one file name");
        // A relative name is watched in the current directory.
        watch.add("Cargo.toml").unwrap();
        assert_eq!(watch.watched(), 2);
        std::fs::write(&app, "2").unwrap();
        assert_eq!(watch.changed().as_deref(), app.to_str());
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }
}
