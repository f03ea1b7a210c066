//! PyMySQL, the pure-Python client, driven from the benchmark: one Python process holds the
//! connection and answers each `WORKLOAD OPS [SQL]` line with the seconds the block took, so its
//! blocks alternate with the other clients' in the same run.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

const DRIVER: &str = r#"
import sys, time, pymysql
host, port, user, password, db = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
connect = lambda: pymysql.connect(host=host, port=port, user=user, password=password, database=db, ssl_disabled=True)
conn = connect()
for line in sys.stdin:
    workload, ops, sql = (line.rstrip("\n").split(" ", 2) + [""])[:3]
    ops = int(ops)
    started = time.perf_counter()
    for _ in range(ops):
        if workload == "select1":
            with conn.cursor() as cur:
                cur.execute("SELECT 1"); cur.fetchall()
        elif workload == "connect":
            connect().close()
        else:
            with conn.cursor() as cur:
                cur.execute(sql); cur.fetchall()
    print(time.perf_counter() - started, flush=True)
"#;

pub struct PyMysql {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl PyMysql {
    /// Starts the driver, or says why not (no Python, no PyMySQL).
    pub fn start(host: &str, port: u16, user: &str, password: &str, db: &str) -> Result<PyMysql, String> {
        let probe = Command::new("python3").args(["-c", "import pymysql"]).output();
        if !probe.is_ok_and(|out| out.status.success()) {
            return Err("PyMySQL is not installed (pip install pymysql); its column is left out".into());
        }
        let mut child = Command::new("python3")
            .args(["-c", DRIVER, host, &port.to_string(), user, password, db])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start python3: {e}"))?;
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        Ok(PyMysql { child, input, output })
    }

    /// Runs `ops` operations of `workload`: `select1`, `connect`, or `query SQL` (SQL on one line).
    pub fn block(&mut self, workload: &str, ops: u32) -> Duration {
        let (name, sql) = workload.split_once(' ').unwrap_or((workload, ""));
        writeln!(self.input, "{name} {ops} {sql}").expect("the PyMySQL driver takes a block");
        let mut line = String::new();
        self.output.read_line(&mut line).expect("the PyMySQL driver answers");
        Duration::from_secs_f64(line.trim().parse().unwrap_or_else(|_| panic!("the PyMySQL driver said {line:?}")))
    }
}

impl Drop for PyMysql {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
