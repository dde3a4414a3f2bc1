"""A throw-away single-node SLURM (slurmctld + slurmd) in a temporary folder, for tests.

Runs as root without cgroups: auth/none, proctrack/linuxproc, task/none, select/cons_tres,
MpiDefault=pmi2, the node line from ``slurmd -C``.  Every daemon is started here in the
foreground (``-D``) so that ``stop()`` ends exactly the processes it started, by PID.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

PACKAGE = "slurm-wlm"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def install_slurm(timeout_s=600):
    """Install Debian's slurm-wlm with apt-get when slurmctld is absent.

    Returns None when SLURM is available, else the reason it cannot be installed."""
    if shutil.which("slurmctld") and shutil.which("slurmd") and shutil.which("sbatch"):
        return None
    apt = shutil.which("apt-get")
    if apt is None:
        return "slurmctld is not installed and apt-get is unavailable to install slurm-wlm"
    if os.geteuid() != 0:
        return "slurmctld is not installed and installing slurm-wlm with apt-get needs root"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "--no-install-recommends", PACKAGE]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}"
                               f"\n{proc.stderr[-2000:]}")
    return None


class MiniSlurm:
    """slurmctld + slurmd on this machine; ``env`` carries SLURM_CONF for every client command."""

    def __init__(self, folder, *, cred_expire_s=5, kill_wait_s=5):
        self.folder = Path(folder)
        self.procs: list[subprocess.Popen] = []
        self.cred_expire_s = cred_expire_s
        self.kill_wait_s = kill_wait_s
        self.conf = self.folder / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        for name in ("SLURM_JOB_ID", "SLURM_JOBID"):        # a test run inside a job must not inherit it
            self.env.pop(name, None)

    # ------------------------------------------------------------ configuration
    def write_config(self):
        for sub in ("state", "spool"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
        node_line = next(line for line in node.splitlines() if line.startswith("NodeName="))
        host = node_line.split()[0].split("=", 1)[1]
        self.node = host
        self.cpus = int(next(w for w in node_line.split() if w.startswith("CPUs=")).split("=")[1])
        # leave memory unmanaged (RealMemory from slurmd -C may exceed what the daemon later sees)
        node_line = " ".join(w for w in node_line.split() if not w.startswith("RealMemory="))
        f = self.folder
        self.conf.write_text(f"""\
ClusterName=acemdtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
AuthInfo=cred_expire={self.cred_expire_s}
StateSaveLocation={f / 'state'}
SlurmdSpoolDir={f / 'spool'}
SlurmctldPidFile={f / 'slurmctld.pid'}
SlurmdPidFile={f / 'slurmd.pid'}
SlurmctldLogFile={f / 'slurmctld.log'}
SlurmdLogFile={f / 'slurmd.log'}
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmi2
MailProg=/bin/true
SchedulerType=sched/builtin
ReturnToService=2
JobRequeue=1
KillWait={self.kill_wait_s}
MinJobAge=3600
InactiveLimit=0
{node_line} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")

    # ------------------------------------------------------------ daemons
    def start(self, timeout_s=60):
        self.write_config()
        for cmd in (["slurmctld", "-D", "-c", "-f", str(self.conf)], ["slurmd", "-D", "-f", str(self.conf)]):
            log = open(self.folder / f"{cmd[0]}.stderr", "w")
            self.procs.append(subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True))
            log.close()
        deadline = time.monotonic() + timeout_s
        state = ""
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args[0]} exited with {p.returncode}:\n{self.logs()}")
            proc = self.run(["sinfo", "-h", "-N", "-o", "%T"], check=False)
            state = proc.stdout.strip()
            if proc.returncode == 0 and state.rstrip("*") == "idle":
                return
            time.sleep(0.5)
        raise RuntimeError(f"the node did not become idle within {timeout_s} s (state {state!r}):\n{self.logs()}")

    def stop(self, timeout_s=60):
        """Cancel every job, wait for them to end, then stop the daemons this object started."""
        try:
            if self.procs and all(p.poll() is None for p in self.procs):
                self.run(["scancel", "--full", "--user", str(os.geteuid())], check=False)
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline and self.run(["squeue", "-h"], check=False).stdout.strip():
                    time.sleep(0.5)
        finally:
            for p in reversed(self.procs):
                if p.poll() is None:
                    p.terminate()
                    try:
                        p.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait(timeout=20)
            self.procs = []

    def logs(self, tail=3000):
        out = []
        for name in ("slurmctld.log", "slurmd.log", "slurmctld.stderr", "slurmd.stderr"):
            path = self.folder / name
            if path.exists():
                out.append(f"--- {name}\n{path.read_text()[-tail:]}")
        return "\n".join(out)

    # ------------------------------------------------------------ clients
    def run(self, cmd, check=True, **kwargs):
        kwargs.setdefault("timeout", 60)
        proc = subprocess.run(cmd, env=kwargs.pop("env", self.env), capture_output=True, text=True, **kwargs)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def sbatch(self, args, cwd, env=None):
        """Submit; returns the job id."""
        proc = self.run(["sbatch", "--parsable", *map(str, args)], cwd=cwd, env=env or self.env)
        return int(proc.stdout.strip().split(";")[0])

    def job_info(self, job_id):
        """``scontrol show job`` as {key: value} (first record; array tasks are separate records)."""
        proc = self.run(["scontrol", "-o", "show", "job", str(job_id)], check=False)
        records = [dict(w.split("=", 1) for w in line.split() if "=" in w)
                   for line in proc.stdout.splitlines() if line.strip()]
        return records

    def wait(self, job_id, timeout_s):
        """Poll squeue until the job (all array tasks) has left the queue; returns the scontrol records."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            proc = self.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], check=False)
            if proc.returncode == 0 and not proc.stdout.strip():
                return self.job_info(job_id)
            time.sleep(1.0)
        raise TimeoutError(f"job {job_id} still queued/running after {timeout_s} s: "
                           f"{self.job_info(job_id)}\n{self.logs()}")
