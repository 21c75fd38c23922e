from kafscale_admin.cli import PROG_NAME, main

main(prog_name=PROG_NAME)
