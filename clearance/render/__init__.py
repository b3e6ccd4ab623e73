"""One rendering layer: documents built once, rendered to Markdown, HTML, Slack and Jira.

* :mod:`.document` — the document model (blocks, inline segments; a plain ``str`` is user text);
* builders — :mod:`.gate` (a gate result), :mod:`.tally` (the sign-off tally), :mod:`.report`
  (a run's report), :mod:`.scorecard` (the readiness scorecard, shown first in the report, Slack and Jira),
  :mod:`.lifecycle` (titles by action, reminders with mentions, certification alerts);
* renderers, each with its own escaping — :mod:`.markdown`, :mod:`.html`, :mod:`.slack`
  (mrkdwn and Block Kit pieces), :mod:`.jira` (wiki markup);
* channel messages — :mod:`.slack_messages` (Block Kit messages and the reject modal),
  :mod:`.jira_comments` (Jira comments and the ticket description).
"""
