from spanreel.cli import run

run()
