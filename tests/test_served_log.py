"""The served tests' check of a server's log: the client-left race is not an error, and
nothing else is let through with it."""

from __future__ import annotations

from tests.served import server_errors

CLIENT_LEFT = """Task exception was never retrieved
future: <Task finished name='Task-796' coro=<WebSocketProtocol13.write_message.<locals>.wrapper() done, defined at /x/tornado/websocket.py:1138> exception=WebSocketClosedError()>
Traceback (most recent call last):
  File "/x/site-packages/tornado/websocket.py", line 1140, in wrapper
    await fut
tornado.iostream.StreamClosedError: Stream is closed

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/x/site-packages/tornado/websocket.py", line 1142, in wrapper
    raise WebSocketClosedError()
tornado.websocket.WebSocketClosedError
"""
OURS = """Traceback (most recent call last):
  File "/x/workbench/ui/strategy_lab.py", line 10, in run
    raise ValueError("boom")
ValueError: boom
"""


def test_the_client_leaving_is_not_a_server_error():
    assert server_errors("Serving on http://localhost:5006\n" + CLIENT_LEFT) == ""


def test_an_error_of_ours_shows_before_after_or_inside_the_race():
    assert server_errors(OURS + CLIENT_LEFT)
    assert server_errors(CLIENT_LEFT + OURS)
    inside = CLIENT_LEFT.replace("tornado.websocket.WebSocketClosedError\n", OURS)
    assert "boom" in server_errors(inside)
    assert server_errors("2026-11-23 Error thrown from callback <function update>\n")
