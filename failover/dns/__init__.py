"""Switching a site's DNS records between its endpoints (the core; the adapters are in
providers/dns/). Imports nothing, so that `failover --help` stays fast:

- plan.py (pure): the records as the provider has them + a target -> a DnsPlan with its
  safety verdict (apply, noop, refused), and the plan for undoing the last switch.
- journal.py: the dns_* tables of the state (switches, their record changes, what the
  providers last showed); the only module of the area that runs SQL.
- apply.py: read, plan, journal, apply through the provider, settle interrupted switches,
  verify: `switch_site_dns()` and `undo_site_dns()` for the CLI and the runbook.
- verify.py: ask every authoritative nameserver directly until all serve the new values.
- show.py: `failover dns show`, TTL warnings and the `status` section.
- hook.py: the agent's hook that now and then reads the records at the providers.
- names.py (pure, a leaf): how DNS names are compared, shared with the config models
  and the adapters.
"""
