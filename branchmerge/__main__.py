from branchmerge.cli import main

main()
