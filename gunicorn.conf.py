"""gunicorn settings read by `gunicorn --config gunicorn.conf.py` (and by default from the
working directory): the access-log line format.

Worklist searches and filters travel in the query string (`?q=Doe`), and browsers send the
previous page's full address as the Referer: a standard access log would write patients'
names and MRNs to disk, outside the access-control and retention of the database. This
format logs the path only (`%(U)s`), never the query string (`%(q)s`), the request line
(`%(r)s`) or the referrer (`%(f)s`). Reverse proxies in front need the same treatment
(nginx: log `$uri`, not `$request` or `$http_referer`).
"""

access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(L)s'

# gunicorn's default, written out because the site's limits follow from it (README "Limits"):
# a request still running after 30 s is killed with its worker, with no answer sent. The
# HL7 interface's HL7_MAX_MESSAGES_PER_REQUEST keeps a request well inside it.
timeout = 30
