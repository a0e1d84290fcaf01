"""Write every config value this program receives, exactly as received, to $ECHO_CONFIG_OUT."""

import json
import os
from pathlib import Path

from pulumi.runtime import config as runtime_config

received = dict(runtime_config.get_config_env())
Path(os.environ["ECHO_CONFIG_OUT"]).write_text(json.dumps(received, sort_keys=True))
