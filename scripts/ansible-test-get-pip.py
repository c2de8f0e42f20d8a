# Stand-in for ansible-test's pip bootstrap script (get-pip), whose download host is
# not reachable from these machines: bootstrap the interpreter's bundled pip with
# ensurepip, then let pip install the version ansible-test asked for from PyPI.
# bootstrap.sh copies this file to ~/.ansible/test/cache/get_pip_<version>.py.
import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
# ensurepip sets PIP_CONFIG_FILE=/dev/null in our environment; the machine's pip
# configuration (index, CA bundle) must apply to the real install.
env = {k: v for k, v in os.environ.items() if k not in ("PIP_CONFIG_FILE", "ENSUREPIP_OPTIONS")}
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", *args], env=env)
