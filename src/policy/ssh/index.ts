/** SSH command lines, resolved statically into the simple commands a POSIX shell would run. Pure. */
export { analyzeShell, flattenCommands, DEFAULT_SHELL_DEPTH, type ShellAnalysis, type ShellCommand, type ShellOptions } from './shell.js';
