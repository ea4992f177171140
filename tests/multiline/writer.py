# A Python program logging with the standard logging module: single records between
# logger.exception() tracebacks, one of them chained ("During handling of the above exception").
# Each record's exact text also goes, base64-encoded, one per line, to the expected file.
# Usage: python3 writer.py LOG EXPECTED ROUNDS
import base64, logging, sys, time

log_path, expected_path, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
fmt = logging.Formatter("%(levelname)s:%(name)s:%(message)s")

class Expected(logging.Handler):
    def emit(self, record):
        with open(expected_path, "a") as f:
            f.write(base64.b64encode(fmt.format(record).encode()).decode() + "\n")

logger = logging.getLogger("app")
logger.setLevel(logging.INFO)
handler = logging.FileHandler(log_path)
handler.setFormatter(fmt)
logger.addHandler(handler)
logger.addHandler(Expected())

def parse(i):
    return {"a": 1}["missing-%d" % i]

for i in range(rounds):
    logger.info("job %d started", i)
    try:
        try:
            parse(i)
        except KeyError:
            int("not a number %d" % i)
    except ValueError:
        logger.exception("job %d failed", i)
    logger.warning("job %d retried", i)
    time.sleep(0.02)
