from tests.views.test_main_window import *  # noqa

def test_dbg(window, qloop, rig, quit_calls):
    seed_accounts(rig, 50)
    _connect(qloop, rig, "account")
    _open(qloop, window)
    task = window.sync_all()
    print("task", task, window._operation)
    window.close()
    box = window.prompt
    b = next(b for b in box.buttons() if b.text() == "Stop safely and quit")
    b.click()
    print("after click", window._close_after_operation, task.cancelled(), task.done())
    qloop.run_until_complete(settle(task))
    print("after settle", window._close_after_operation, window._operation, window._close_confirmed, quit_calls.calls, window.isVisible())
