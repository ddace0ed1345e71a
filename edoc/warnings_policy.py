"""Which library warnings edoc's own processes do not show: importing this module is the
decision. The CLI imports it, and so does the fork server of edoc's verifying worker
processes (``edoc.services.period_verification``), whose stderr no filter of the calling
program reaches. The rest of the library does not: a program embedding edoc keeps its own
filters in its own process.

pyHanko imports cryptography's DSA classes, which cryptography deprecates. edoc never signs
or verifies with DSA; an auditor's terminal (and a cron job's mail) should not show a
library's warning on every command, nor a worker process print it into the middle of a
period report's stderr. Narrow: that category, raised inside pyhanko only.
"""

from __future__ import annotations

import warnings

from cryptography.utils import CryptographyDeprecationWarning

warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning,
                        module=r"pyhanko(\.|$)")
