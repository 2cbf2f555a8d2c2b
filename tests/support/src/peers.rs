//! Real peers on loopback: PostgreSQL and Debian's `docker-registry`, each
//! started as a child process in a temporary directory and stopped on drop.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Wait until something accepts connections on `addr`.
pub fn wait_for_port(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start listening on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Debian's `docker-registry` (CNCF distribution 2.x) on loopback, no auth,
/// filesystem storage in a temporary directory. Killed on drop.
pub struct DockerRegistry {
    /// `127.0.0.1:<port>`.
    pub host: String,
    /// Its storage root.
    pub storage: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl DockerRegistry {
    /// Start it; panics with how to install it when the binary is missing
    /// (`scripts/test` installs it).
    pub fn start() -> DockerRegistry {
        DockerRegistry::start_with(None)
    }

    /// Start it with HTTP Basic auth (htpasswd, bcrypt) for one user.
    pub fn start_with_basic_auth(user: &str, password: &str) -> DockerRegistry {
        DockerRegistry::start_with(Some((user, password)))
    }

    fn start_with(basic: Option<(&str, &str)>) -> DockerRegistry {
        let bin = which("docker-registry").unwrap_or_else(|| {
            panic!(
                "docker-registry is not installed: `apt-get install docker-registry` \
                 (scripts/test does this)"
            )
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let storage = dir.path().join("storage");
        let config = dir.path().join("config.yml");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        );
        if let Some((user, password)) = basic {
            let hash = bcrypt::hash(password, 4).expect("bcrypt");
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).expect("write htpasswd");
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: tack-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        std::fs::write(&config, yaml).expect("write config");
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_for_port(addr, "docker-registry");
        DockerRegistry {
            host: addr.to_string(),
            storage,
            child,
            _dir: dir,
        }
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Every file under `dir` (recursively), for "nothing was left behind" checks.
///
/// `dir` must exist: "no file in a directory that was never made" holds
/// whatever the code did (a wrong path, a setting ignored), so it checks nothing.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    assert!(
        dir.is_dir(),
        "{} does not exist: create it before the code under test runs, so that \
         finding nothing in it means something",
        dir.display()
    );
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A throwaway PostgreSQL cluster on loopback (Debian's `postgresql` package),
/// trust auth, stopped and removed on drop. As root it runs as the `postgres` user.
pub struct Postgres {
    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub url: String,
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

impl Postgres {
    fn command(bin: &Path, tool: &str, as_postgres: bool) -> Command {
        if as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
            c
        } else {
            Command::new(bin.join(tool))
        }
    }

    /// Start a cluster; panics with how to install PostgreSQL when it is missing
    /// (`scripts/test` installs it).
    pub fn start() -> Postgres {
        let bin = postgres_bin().unwrap_or_else(|| {
            panic!(
                "PostgreSQL is not installed: `apt-get install postgresql` (scripts/test does this)"
            )
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(
                ok.success(),
                "cannot hand the data directory to the postgres user"
            );
        }
        let data = dir.path().join("data");
        let out = Postgres::command(&bin, "initdb", as_postgres)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            dir.path().display()
        );
        let out = Postgres::command(&bin, "pg_ctl", as_postgres)
            .args(["-w", "-D"])
            .arg(&data)
            .args(["-o", &opts, "-l"])
            .arg(dir.path().join("log"))
            .arg("start")
            .output()
            .expect("run pg_ctl");
        assert!(
            out.status.success(),
            "postgres did not start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
        );
        Postgres {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            bin,
            data,
            as_postgres,
            _dir: dir,
        }
    }
}

impl Postgres {
    /// The cluster's data directory (tables, WAL).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Write every changed page out to the data files (`CHECKPOINT`).
    pub fn checkpoint(&self) {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-d", &self.url, "-c", "CHECKPOINT"])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "CHECKPOINT failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Run the SQL script at `file` (e.g. a `pg_dump`) with `psql`, stopping at
    /// the first error.
    pub fn run_sql_file(&self, file: &Path) {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &self.url, "-f"])
            .arg(file)
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql -f {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Postgres::command(&self.bin, "pg_ctl", self.as_postgres)
            .args(["-D"])
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}
