"""A module whose import starts a thread: it must never be preloaded into the zygote."""

import threading
import time

threading.Thread(target=time.sleep, args=(3600,), daemon=True, name="imported-thread").start()
