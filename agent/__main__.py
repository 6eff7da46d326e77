from mqwatch.agent.cli import main

raise SystemExit(main())
