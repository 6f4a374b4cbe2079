// Commands contributed by feature modules, merged into the `cosface` command table (src/cli.ts).
// Each entry takes the arguments after the command name, prints its result, and throws
// CosfaceError on failure (the CLI prints "error CODE: message" and exits 2).
// Add a feature's commands here: one import, one line per command, one usage block.
export type Command = (args: string[]) => Promise<void>;

export const EXTRA_COMMANDS: Record<string, () => Promise<Command>> = {};

/** Usage lines appended to the CLI's help. */
export const EXTRA_USAGE: string[] = [];
